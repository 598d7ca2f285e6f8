//! The source and build stages of the pipeline: a model argument → config
//! → parameters → verified IR graph, or an ONNX file imported as it is.
//! `dump` stops here ([`build_source`]); [`super::run`] goes on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::builder::{build_model, model_params, Head, ModelSpec};
use crate::config::BertConfig;
use crate::error::Error;
use crate::ir::{verify, Graph};
use crate::sentence_transformers::SentenceModules;
use crate::source::{resolve, sha256_file, MissingWeights, ModelSource};
use crate::weights::{checkpoint_names, from_checkpoint_with, placeholder, seeded, WeightsError};

use super::report::WeightsReport;

/// Where the graph comes from.
// One value per compile, moved once into `run`: boxing the config would
// only add an allocation and noise at every call site.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// A config (preset or config.json) built with these options.
    Config(BertConfig, BuildOptions),
    /// An existing graph (an imported ONNX file), taken as it is.
    Graph(Graph),
}

/// A model argument and how its weights and head are chosen: what
/// `compile` and `dump` take on the command line.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// A model folder, a config.json path or a preset name (or, for
    /// [`SourceOptions::source`], an `.onnx` file).
    pub model: String,
    /// The revision of a hub id `model` (branch, tag or commit; default main).
    pub revision: Option<String>,
    /// Weights to load instead of the ones in the model's folder.
    pub weights: Option<PathBuf>,
    /// Seeded random weights even where the folder has a checkpoint.
    pub random_weights: bool,
    /// Seed of the random init; refused where weights are loaded.
    pub seed: Option<u64>,
    pub head: Option<Head>,
    pub keep_last_hidden_state: bool,
    /// A sentence-embedding model without its per-token output.
    pub sentence_embedding_only: bool,
    pub allow_nonfinite: bool,
}

impl SourceOptions {
    /// The model and its weights ([`crate::source::resolve`]); `--seed`
    /// is refused where a checkpoint is loaded (it would change nothing).
    pub fn resolve(&self, missing: MissingWeights) -> Result<ModelSource, Error> {
        let source = resolve(
            &self.model,
            self.revision.as_deref(),
            self.weights.as_deref(),
            self.random_weights,
            missing,
        )?;
        if let (Some(_), Some(weights)) = (self.seed, &source.weights) {
            return Err(Error::SeedWithWeights(weights.clone()));
        }
        Ok(source)
    }

    /// The build options for a resolved source.
    pub fn build_options(&self, source: &ModelSource) -> BuildOptions {
        BuildOptions {
            weights: source.weights.clone(),
            seed: self.seed.unwrap_or(0),
            head: self.head,
            sentence: source.sentence.clone(),
            keep_last_hidden_state: self.keep_last_hidden_state,
            sentence_embedding_only: self.sentence_embedding_only,
            allow_nonfinite: self.allow_nonfinite,
            ..Default::default()
        }
    }

    /// The pipeline's source: an `.onnx` file imported as it is (the
    /// other options do not apply to it), anything else resolved and built.
    pub fn source(&self, missing: MissingWeights) -> Result<Source, Error> {
        if self.model.ends_with(".onnx") {
            return Ok(Source::Graph(crate::onnx::read_model(Path::new(&self.model))?));
        }
        let source = self.resolve(missing)?;
        let options = self.build_options(&source);
        Ok(Source::Config(source.config, options))
    }
}

/// The config a model argument names (a preset, a config.json or a model
/// folder), whatever its weights; see [`crate::source::resolve`].
pub fn load_config(model: &str) -> Result<BertConfig, Error> {
    Ok(resolve(model, None, None, true, MissingWeights::Random)?.config)
}

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// A safetensors checkpoint; `None` draws seeded random weights.
    pub weights: Option<PathBuf>,
    pub seed: u64,
    /// The task head; `None` takes it from the config's `architectures`.
    pub head: Option<Head>,
    /// Keep `last_hidden_state` as an output beside the head's own.
    pub keep_last_hidden_state: bool,
    /// A sentence-embedding model outputs `sentence_embedding` alone.
    /// Otherwise it also outputs `last_hidden_state`, as Optimum's
    /// feature-extraction export: `ORTModelForFeatureExtraction` reads that
    /// output by name, and sentence-transformers' ONNX backend pools it
    /// itself with the folder's modules.
    pub sentence_embedding_only: bool,
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
pub fn model_spec(config: &BertConfig, opts: &BuildOptions) -> Result<ModelSpec, Error> {
    let head = match (opts.head, &opts.sentence) {
        (Some(h), _) => h,
        (None, Some(_)) => Head::SentenceEmbedding,
        (None, None) => config.family.head_for(&config.architectures)?,
    };
    let mut spec = ModelSpec::for_config(head, config);
    spec.keep_last_hidden_state =
        opts.keep_last_hidden_state || (head == Head::SentenceEmbedding && !opts.sentence_embedding_only);
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
pub fn build(config: &BertConfig, opts: &BuildOptions) -> Result<Built, Error> {
    let start = Instant::now();
    let spec = model_spec(config, opts)?;
    let specs = model_params(config, &spec);
    let mut weights = match &opts.weights {
        Some(path) => from_checkpoint_with(path, &specs, opts.allow_nonfinite)?,
        None if opts.shapes_only => placeholder(&specs)?,
        None => seeded(&specs, opts.seed)?,
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

/// The source and build stages' product: the verified graph before any
/// pass, and how it was built. A clone shares the weights' buffers.
#[derive(Clone)]
pub struct Sourced {
    pub graph: Graph,
    /// The model built (config sources).
    pub spec: Option<ModelSpec>,
    /// The options it was built with (config sources).
    pub build: Option<BuildOptions>,
    /// Checkpoint tensors of other heads (or the pooler) left unread.
    pub ignored: Vec<String>,
    pub load_time: Duration,
    pub build_time: Duration,
}

/// The graph `source` gives: a config built ([`build`]), a graph as it is.
pub fn build_source(source: Source) -> Result<Sourced, Error> {
    match source {
        Source::Graph(graph) => Ok(Sourced {
            graph,
            spec: None,
            build: None,
            ignored: vec![],
            load_time: Duration::ZERO,
            build_time: Duration::ZERO,
        }),
        Source::Config(config, opts) => {
            let built = build(&config, &opts)?;
            Ok(Sourced {
                graph: built.graph,
                spec: Some(built.spec),
                build: Some(opts),
                ignored: built.ignored,
                load_time: built.load_time,
                build_time: built.build_time,
            })
        }
    }
}

impl WeightsReport {
    /// Where the weights of a graph built with `build` came from (`None`:
    /// an ONNX source's own). A checkpoint is hashed here, after the build,
    /// so that a bad one gets the loader's own message.
    pub fn of(build: Option<&BuildOptions>) -> Result<WeightsReport, Error> {
        Ok(match build {
            None => WeightsReport::Graph,
            Some(BuildOptions {
                weights: Some(path), ..
            }) => WeightsReport::File {
                sha256: sha256_file(path).map_err(|error| WeightsError::Io {
                    path: path.display().to_string(),
                    error,
                })?,
                path: path.clone(),
            },
            Some(opts) if opts.shapes_only => WeightsReport::Placeholder,
            Some(opts) => WeightsReport::Random { seed: opts.seed },
        })
    }
}
