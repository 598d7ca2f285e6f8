//! The source and build stages of the pipeline ([`crate::pipeline`]):
//! a model argument → config → parameters → verified IR graph.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::builder::{build_model, model_params, Head, ModelSpec};
use crate::config::BertConfig;
use crate::error::Error;
use crate::ir::{verify, Graph};
use crate::sentence_transformers::SentenceModules;
use crate::weights::{checkpoint_names, from_checkpoint_with, placeholder, seeded};

/// The config a model argument names (a preset, a config.json or a model
/// folder), whatever its weights; see [`crate::source::resolve`].
pub fn load_config(model: &str) -> Result<BertConfig, Error> {
    Ok(crate::source::resolve(model, None, true, crate::source::MissingWeights::Random)?.config)
}

#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// A safetensors checkpoint; `None` draws seeded random weights.
    pub weights: Option<PathBuf>,
    pub seed: u64,
    /// The task head; `None` takes it from the config's `architectures`.
    pub head: Option<Head>,
    /// Keep `last_hidden_state` as an output beside the head's own.
    pub keep_last_hidden_state: bool,
    /// Build with placeholder weights (zeros that are never touched) when
    /// there are no `weights`: the graph's structure and shapes without
    /// drawing hundreds of MB of random numbers, for commands that only
    /// count (inspect).
    pub shapes_only: bool,
    /// Accept NaN and ±Inf in the checkpoint (refused by default, naming
    /// the tensor and the first bad element).
    pub allow_nonfinite: bool,
    /// A sentence-transformers folder's modules: the sentence-embedding
    /// head (unless `head` says otherwise) with their pooling, and
    /// `max_seq_length` in the metadata.
    pub sentence: Option<SentenceModules>,
}

/// A built graph and how long each stage took.
pub struct Built {
    pub graph: Graph,
    pub spec: ModelSpec,
    /// Checkpoint tensors of other heads (or the pooler) left unread.
    pub ignored: Vec<String>,
    pub load_time: Duration,
    pub build_time: Duration,
}

/// The model to build: the chosen head (or the config's), with a pooler
/// where transformers builds one — for the base model, only when the
/// checkpoint has one (BertModel saved with `add_pooling_layer=False`
/// has none).
pub fn model_spec(config: &BertConfig, opts: &CompileOptions) -> Result<ModelSpec, Error> {
    let head = match (opts.head, &opts.sentence) {
        (Some(h), _) => h,
        (None, Some(_)) => Head::SentenceEmbedding,
        (None, None) => config.family.head_for(&config.architectures)?,
    };
    let mut spec = ModelSpec::for_config(head, config);
    spec.keep_last_hidden_state = opts.keep_last_hidden_state;
    if let Some(modules) = &opts.sentence {
        spec.sentence = modules.pooling;
    }
    if let (true, Head::Base, Some(path)) = (spec.pooler, head, &opts.weights) {
        let names = checkpoint_names(path)?;
        // Either half of the pooler means the checkpoint has one: a missing
        // other half is then reported as missing, never silently dropped.
        let family = config.family.spec();
        let pooler = family.pooler.linear;
        spec.pooler = names.iter().any(|n| {
            let n = n.strip_prefix(&format!("{}.", family.prefix)).unwrap_or(n);
            n == format!("{pooler}.weight") || n == format!("{pooler}.bias")
        });
    }
    Ok(spec)
}

/// Builds the verified IR graph of a config (no passes).
pub fn build(config: &BertConfig, opts: &CompileOptions) -> Result<Built, Error> {
    let start = Instant::now();
    let spec = model_spec(config, opts)?;
    let specs = model_params(config, &spec);
    let mut weights = match &opts.weights {
        Some(path) => from_checkpoint_with(path, &specs, opts.allow_nonfinite)?,
        None if opts.shapes_only => placeholder(&specs),
        None => seeded(&specs, opts.seed),
    };
    let ignored = std::mem::take(&mut weights.ignored);
    let load_time = start.elapsed();
    let start = Instant::now();
    let mut graph = build_model(config, &spec, weights)?;
    if opts.weights.is_none() && !opts.shapes_only {
        graph.metadata.insert(
            "bertc.weights".into(),
            format!("seeded random init, seed {}", opts.seed),
        );
    }
    // The Transformer module's truncation, for `run` (the graph itself
    // takes any length up to the position table).
    if let Some(n) = opts.sentence.as_ref().and_then(|s| s.max_seq_length) {
        graph
            .metadata
            .insert("bertc.max_seq_length".into(), n.to_string());
    }
    verify(&graph)?;
    Ok(Built {
        graph,
        spec,
        ignored,
        load_time,
        build_time: start.elapsed(),
    })
}
