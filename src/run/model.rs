//! What `bertc run` runs: a model (an export folder's `model.onnx`, or the
//! form of it that fits the runtime ([`super::form`]), a hub
//! model folder compiled in memory, or an `.onnx` file with a tokenizer
//! named apart), its tokenizer and what the pipeline needs to know about
//! it — the task, the labels, the length limit.

use std::path::{Path, PathBuf};

use crate::builder::Head;
use crate::config::BertConfig;
use crate::ir::Graph;
use crate::pipeline::{BuildOptions, PipelineOptions, Source};
use crate::runtime::{InputLimits, ModelSource, Runtime, RuntimeModel, RuntimeOptions};
use crate::sentence_transformers::max_seq_length;
use crate::session::Session;
use crate::source::{resolve, MissingWeights};
use crate::tokenize::{TextTokenizer, TokenizerConfig};

use super::form::{choose, refuse_for_file, ChosenFile, FormChoice};
use super::pipeline_config::PipelineConfig;
use super::zero_shot::ZeroShotPlan;
use super::{BatchLimits, RunError, Task};

/// Where the model and its tokenizer come from.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// tokenizer.json, spm.model, vocab.txt or a folder holding them; required for a
    /// bare `.onnx`, overrides the model folder's own otherwise.
    pub tokenizer: Option<PathBuf>,
    /// Where the model runs (tract unless asked).
    pub runtime: Runtime,
    /// How large the length-sorted batches may grow.
    pub batch: BatchLimits,
    /// Which file of an export folder to load ([`super::form`]).
    pub form: FormChoice,
    /// tract: plans with the length (and the batch size, beyond one row)
    /// left to run time ([`crate::runtime::PlanShapes::Symbolic`]). A
    /// server's requests bring a new (rows, length) shape nearly every
    /// call, and a concrete plan costs 30–90 ms to build for MiniLM; a
    /// file's sorted batches reuse their last plans, and there concrete
    /// plans ran ~2 % faster (2,000 text-mix lines: 12.2–12.7 s against
    /// 12.7–13.7 s, 372 against 295 MB peak), so `run` keeps them and
    /// `serve` asks for the symbolic ones.
    pub one_plan: bool,
}

/// A model ready to answer.
pub struct LoadedModel {
    pub model: RuntimeModel,
    pub tokenizer: TextTokenizer,
    pub task: Task,
    /// Label names by id.
    pub labels: Vec<String>,
    /// config.json's label2id in file order (else id2label's inverse).
    pub label2id: Vec<(String, usize)>,
    /// `problem_type: multi_label_classification`: sigmoid per label.
    pub multi_label: bool,
    /// Set by [`LoadedModel::zero_shot`]: the task is then zero-shot
    /// classification with these labels.
    pub zero_shot: Option<ZeroShotPlan>,
    /// How large the length-sorted batches of a run may grow.
    pub limits: BatchLimits,
    /// The file of an export folder loaded, and why.
    pub file: Option<ChosenFile>,
    /// What the model's token inputs may hold: every batch the tokenizer
    /// makes is checked against it before the runtime sees it.
    pub input_limits: InputLimits,
    /// Inputs of the current call cut at the model's limit.
    pub(super) cut: Vec<super::options::Cut>,
}

/// The key H4's export writes sentence-transformers' `max_seq_length` under.
pub const MAX_SEQ_LENGTH_KEY: &str = "bertc.max_seq_length";

/// Loads `arg`: an export folder (model.onnx beside config.json and the
/// tokenizer files), a model folder (config.json + checkpoint, compiled
/// in memory through [`crate::pipeline::run`]), or an `.onnx` file; to
/// run on `session`'s threads.
pub fn load(session: &Session, arg: &Path, opts: &RunOptions) -> Result<LoadedModel, RunError> {
    let file = match arg.is_dir() {
        true => choose(arg, opts.runtime, &opts.form)?,
        false => {
            refuse_for_file(arg, &opts.form)?;
            None
        }
    };
    let (graph, bytes, folder) = if let Some(chosen) = &file {
        let (graph, bytes) = read_onnx(&chosen.path)?;
        (graph, bytes, Some(arg.to_path_buf()))
    } else if arg.is_dir() {
        let shown = arg.display().to_string();
        let source = resolve(&shown, None, None, false, MissingWeights::Refuse)?;
        let build = BuildOptions {
            weights: source.weights.clone(),
            // A sentence-transformers folder is its sentence-embedding model
            // (run reads sentence_embedding alone: no per-token output).
            sentence: source.sentence.clone(),
            sentence_embedding_only: true,
            ..Default::default()
        };
        let compiled = crate::pipeline::run(
            session,
            Source::Config(source.config, build),
            &PipelineOptions::default(),
        )?;
        // The graph read back from its own bytes shares their buffer: the
        // weights are held once while the runtime loads, not twice.
        let bytes = bytes::Bytes::from(compiled.to_bytes().map_err(crate::Error::from)?);
        drop(compiled);
        let graph = crate::onnx::import_shared_bytes(bytes.clone()).map_err(crate::Error::from)?;
        (graph, bytes, Some(arg.to_path_buf()))
    } else {
        let (graph, bytes) = read_onnx(arg)?;
        (graph, bytes, None)
    };
    // A bare .onnx takes its labels and problem type from a config.json
    // beside it when there is one, else from its own metadata.
    let config_folder = folder.clone().or_else(|| {
        arg.parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .filter(|p| p.join("config.json").is_file())
            .map(Path::to_path_buf)
    });
    let config = model_config(&graph, config_folder.as_deref())?;
    let task = task_of(&graph, config.as_ref())?;
    let tokenizer_source = match (&opts.tokenizer, &folder) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => f.clone(),
        (None, None) => return Err(RunError::NoTokenizer(arg.to_path_buf())),
    };
    let tokenizer = load_tokenizer(&tokenizer_source, &graph, folder.as_deref())?;
    let labels = config
        .as_ref()
        .map(|c| c.id2label.values().cloned().collect())
        .unwrap_or_default();
    let pipeline = match config_folder {
        Some(f) => PipelineConfig::read(&f.join("config.json"))?,
        None => PipelineConfig::default(),
    };
    // The file's label2id as written, else the one id2label implies.
    let label2id = match pipeline.label2id.clone() {
        Some(l) => l,
        None => config
            .as_ref()
            .map(|c| c.id2label.iter().map(|(&i, n)| (n.clone(), i)).collect())
            .unwrap_or_default(),
    };
    let runtime_opts = RuntimeOptions {
        threads: session.threads(),
        take_turns: false,
        one_plan: opts.one_plan,
    };
    // A file with external data is loaded from its path, so the runtime
    // finds the data beside it (from the bytes, tract aborted: "external
    // data was detected"; issue 25, N6). Otherwise from the bytes already
    // read, which the graph shares.
    let onnx_file = file
        .as_ref()
        .map(|f| f.path.as_path())
        .or((!arg.is_dir()).then_some(arg));
    let source = match onnx_file {
        Some(path)
            if !crate::onnx::external_data_files(path)
                .map_err(crate::Error::from)?
                .is_empty() =>
        {
            ModelSource::File(path)
        }
        _ => ModelSource::Bytes(&bytes),
    };
    let model = RuntimeModel::load_checked(session, opts.runtime, source, &runtime_opts, &graph)?;
    Ok(LoadedModel {
        model,
        tokenizer,
        task,
        labels,
        label2id,
        multi_label: pipeline.multi_label(),
        zero_shot: None,
        limits: opts.batch,
        file,
        input_limits: InputLimits::of(&graph),
        cut: Vec::new(),
    })
}

/// The model and its file's bytes, sharing one buffer.
fn read_onnx(path: &Path) -> Result<(Graph, bytes::Bytes), RunError> {
    Ok(crate::onnx::read_model_and_bytes(path).map_err(crate::Error::from)?)
}

/// The config: the folder's config.json, else the one bertc stored in
/// the model's metadata (`bertc.config`); `None` for foreign files without.
fn model_config(graph: &Graph, folder: Option<&Path>) -> Result<Option<BertConfig>, RunError> {
    if let Some(path) = folder.map(|f| f.join("config.json")).filter(|p| p.is_file()) {
        return Ok(Some(BertConfig::from_path(&path)?));
    }
    match graph.metadata.get("bertc.config") {
        Some(text) => Ok(Some(BertConfig::from_json_str(
            text,
            "the model's bertc.config metadata",
        )?)),
        None => Ok(None),
    }
}

/// The task: the head bertc built (`bertc.head`), else the config's
/// architectures, else the model's output names; then checked against
/// the outputs the model really has.
fn task_of(graph: &Graph, config: Option<&BertConfig>) -> Result<Task, RunError> {
    let outputs: Vec<String> = graph.outputs().iter().map(|(n, _)| n.clone()).collect();
    let has = |n: &str| outputs.iter().any(|o| o == n);
    let head = match graph.metadata.get("bertc.head").and_then(|h| Head::parse(h)) {
        Some(h) => Some(h),
        None => match config {
            Some(c) if !c.architectures.is_empty() => c.family.head_for(&c.architectures).ok(),
            _ => None,
        },
    };
    let head = head.or(if has("sentence_embedding") {
        Some(Head::SentenceEmbedding)
    } else if has("start_logits") {
        Some(Head::QuestionAnswering)
    } else {
        None
    });
    let task = match head {
        Some(Head::SentenceEmbedding) => Task::SentenceSimilarity,
        Some(Head::SequenceClassification) => Task::TextClassification,
        Some(Head::TokenClassification) => Task::TokenClassification,
        Some(Head::QuestionAnswering) => Task::QuestionAnswering,
        Some(Head::MaskedLm) => Task::FillMask,
        Some(Head::Base) | None => return Err(RunError::NoTask { outputs }),
    };
    for needed in task.outputs() {
        if !has(needed) {
            return Err(RunError::MissingOutput {
                task: task.name(),
                output: needed.to_string(),
                outputs,
            });
        }
    }
    Ok(task)
}

/// The tokenizer, truncating at the model's limit: sentence-transformers'
/// `max_seq_length` when the folder or the metadata has it, else the
/// position table (and the tokenizer's own `model_max_length` if lower).
fn load_tokenizer(source: &Path, graph: &Graph, folder: Option<&Path>) -> Result<TextTokenizer, RunError> {
    let (tokenizer_folder, file) = if source.is_dir() {
        (source.to_path_buf(), None)
    } else {
        let parent = source
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (parent.to_path_buf(), Some(source))
    };
    let config = TokenizerConfig::from_folder(&tokenizer_folder)?;
    // A bare .onnx with a sentence-transformers folder as its tokenizer
    // takes that folder's max_seq_length.
    let st = max_seq_length(folder.unwrap_or(&tokenizer_folder)).map_err(crate::Error::from)?;
    let meta = graph
        .metadata
        .get(MAX_SEQ_LENGTH_KEY)
        .and_then(|v| v.parse::<usize>().ok());
    let positions = crate::runtime::max_sequence(graph);
    let max_length = match st.or(meta) {
        Some(n) => positions.map_or(n, |p| n.min(p)),
        None => [positions, config.model_max_length]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(512),
    };
    let tokenizer = match file {
        None => TextTokenizer::from_folder(&tokenizer_folder, max_length)?,
        Some(f) if f.extension().is_some_and(|e| e == "txt") => {
            TextTokenizer::from_vocab(f, &config, max_length)?
        }
        Some(f) if f.extension().is_some_and(|e| e == "model") => {
            TextTokenizer::from_spm(f, &config, max_length)?
        }
        Some(f) => TextTokenizer::from_tokenizer_json(f, &config, max_length)?,
    };
    Ok(tokenizer)
}
