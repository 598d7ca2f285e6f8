//! Text to model inputs: Hugging Face tokenizers, as transformers and
//! sentence-transformers call them.
//!
//! A model folder ships either `tokenizer.json` (the fast tokenizer,
//! read by the `tokenizers` crate itself, so normalisation, WordPiece and
//! offsets are the very code transformers runs) or only `vocab.txt` with
//! `tokenizer_config.json`, from which the same BERT pipeline is assembled
//! (BertNormalizer → BertPreTokenizer → WordPiece → [CLS] A [SEP] B [SEP]),
//! or DeBERTa's `spm.model`, assembled as transformers 5 does
//! ([`sentencepiece`]).
//! Truncation and padding are set here, per call, whatever the file says:
//! hub files often carry a fixed padding (`Fixed: 128`) that pipelines
//! override.

mod json_counts;
mod sentencepiece;
mod spm_proto;

use std::path::{Path, PathBuf};

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Decoder, EncodeInput, Encoding, PaddingDirection, PaddingParams, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::model_folder::regular_file_inside;
use crate::runtime::{HostTensor, NamedTensors};

pub use sentencepiece::MAX_PIECES;

/// The largest tokenizer file read (the biggest hub tokenizer.json files
/// are tens of MB): checked before reading.
pub const MAX_TOKENIZER_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    #[error("{}: cannot read: {error}", .path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: {size} bytes, more than a tokenizer file may have ({MAX_TOKENIZER_BYTES})", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: not a valid tokenizer file: {message}", .path.display())]
    Malformed { path: PathBuf, message: String },
    #[error("{}: field `{field}` = {value}: expected {expected}", .path.display())]
    Field {
        path: PathBuf,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{}: the special token `{token}` ({role}) is not in its vocabulary", .path.display())]
    MissingToken {
        path: PathBuf,
        role: &'static str,
        token: String,
    },
    #[error(
        "{}: no tokenizer: expected tokenizer.json, spm.model or vocab.txt (with tokenizer_config.json) in this folder",
        .0.display()
    )]
    NotFound(PathBuf),
    /// One bound for every vocabulary (the largest in use have about 250,000).
    #[error("{}: {count} pieces, more than {what} may have ({MAX_PIECES})", .path.display())]
    TooManyPieces {
        path: PathBuf,
        count: usize,
        /// "a SentencePiece model", "a WordPiece vocabulary".
        what: &'static str,
    },
    #[error("{}: piece {index} ({piece:?}): {message}", .path.display())]
    Piece {
        path: PathBuf,
        index: usize,
        piece: String,
        message: String,
    },
    #[error(transparent)]
    FolderPath(#[from] crate::model_folder::FolderPathError),
    #[error("tokenizing failed: {0}")]
    Encode(String),
    #[error("the tokenizer's maximum length must be at least {least} (its special tokens), got {got}")]
    MaxLength { got: usize, least: usize },
}

/// The special tokens the pipelines look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialIds {
    pub cls: Option<u32>,
    pub sep: Option<u32>,
    pub pad: u32,
    pub pad_token: String,
    pub mask: Option<u32>,
    pub unk: Option<u32>,
}

/// A loaded tokenizer with the model's length limit. Cloned by a server,
/// whose HTTP side counts tokens while the model's own copy runs.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The file it was read from (tokenizer.json or vocab.txt).
    pub path: PathBuf,
    /// The longest encoding the model takes, special tokens included.
    pub max_length: usize,
    pub special: SpecialIds,
}

/// One input of a batch: a text, or a pair (cross-encoders, QA).
#[derive(Debug, Clone, Copy)]
pub enum TextInput<'a> {
    Single(&'a str),
    Pair(&'a str, &'a str),
}

/// How an over-long input is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncate {
    /// Drop tokens from the longer sequence first (transformers' `truncation=True`).
    LongestFirst,
    /// Cut only the first sequence (zero-shot classification's premise);
    /// an error when it is too short to make room.
    OnlyFirst,
    /// Cut only the second sequence (the context of a QA pair), keeping
    /// `stride` tokens of overlap between the overflowing windows.
    OnlySecond { max_length: usize, stride: usize },
    /// Cut a single text into windows of the model's limit overlapping by
    /// `stride` tokens (token-classification's `stride`), the later
    /// windows in each encoding's `get_overflowing()`.
    Windows { stride: usize },
}

/// Encodings padded to the longest, with their model inputs.
pub struct Batch {
    pub encodings: Vec<Encoding>,
    /// Padded length.
    pub seq: usize,
    /// The id padding is made of.
    pub pad: u32,
}

/// The file names a folder's tokenizer may come from.
pub const TOKENIZER_FILES: [&str; 6] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    SPM_MODEL_FILE,
    "added_tokens.json",
];

/// DeBERTa-v2/v3's SentencePiece model.
pub const SPM_MODEL_FILE: &str = "spm.model";

fn read_bounded(path: &Path) -> Result<Vec<u8>, TokenizeError> {
    let io = |error| TokenizeError::Io {
        path: path.to_path_buf(),
        error,
    };
    crate::input_file::require_regular(path).map_err(io)?;
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_TOKENIZER_BYTES {
        return Err(TokenizeError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    std::fs::read(path).map_err(io)
}

/// The tokens of a vocab.txt: its lines, a last one without a newline
/// included.
fn vocab_lines(bytes: &[u8]) -> usize {
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

/// A JSON object file (tokenizer_config.json, special_tokens_map.json).
fn read_json_object(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>, TokenizeError> {
    let bytes = read_bounded(path)?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(TokenizeError::Malformed {
            path: path.to_path_buf(),
            message: format!("expected a JSON object, found {}", json_kind(&other)),
        }),
        Err(e) => Err(TokenizeError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The settings of tokenizer_config.json (and special_tokens_map.json)
/// that shape a BERT or DeBERTa tokenizer, with transformers' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizerConfig {
    /// `None`: the tokenizer's own default (BERT lowercases, DeBERTa not).
    pub do_lower_case: Option<bool>,
    /// `None`: follow `do_lower_case`, as BertNormalizer does.
    pub strip_accents: Option<bool>,
    pub tokenize_chinese_chars: bool,
    pub unk_token: String,
    pub cls_token: String,
    pub sep_token: String,
    pub pad_token: String,
    pub mask_token: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// `additional_special_tokens` (transformers 4) and
    /// `extra_special_tokens` (5), in file order.
    pub extra_special_tokens: Vec<String>,
    /// DeBERTa: punctuation split off before SentencePiece.
    pub split_by_punct: bool,
    /// DeBERTa: `▁` before every word (`None`: yes) or the first only.
    pub add_prefix_space: Option<bool>,
    /// `model_max_length`, when it is a real limit (transformers writes
    /// 1e30 for "none").
    pub model_max_length: Option<usize>,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        TokenizerConfig {
            do_lower_case: None,
            strip_accents: None,
            tokenize_chinese_chars: true,
            unk_token: "[UNK]".into(),
            cls_token: "[CLS]".into(),
            sep_token: "[SEP]".into(),
            pad_token: "[PAD]".into(),
            mask_token: "[MASK]".into(),
            bos_token: None,
            eos_token: None,
            extra_special_tokens: vec![],
            split_by_punct: false,
            add_prefix_space: None,
            model_max_length: None,
        }
    }
}

impl TokenizerConfig {
    /// Reads the folder's tokenizer_config.json and special_tokens_map.json
    /// (each optional); a field of the wrong type is an error naming it.
    pub fn from_folder(folder: &Path) -> Result<TokenizerConfig, TokenizeError> {
        let mut config = TokenizerConfig::default();
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            if let Some(path) = regular_file_inside(folder, name)? {
                config.apply(&path, &read_json_object(&path)?)?;
            }
        }
        Ok(config)
    }

    fn apply(
        &mut self,
        path: &Path,
        map: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), TokenizeError> {
        let bad = |field: &'static str, v: &serde_json::Value, expected: &'static str| TokenizeError::Field {
            path: path.to_path_buf(),
            field,
            value: v.to_string(),
            expected,
        };
        let flag = |field: &'static str| -> Result<Option<bool>, TokenizeError> {
            match map.get(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
                Some(v) => Err(bad(field, v, "true, false or null")),
            }
        };
        if let Some(b) = flag("do_lower_case")? {
            self.do_lower_case = Some(b);
        }
        if let Some(b) = flag("split_by_punct")? {
            self.split_by_punct = b;
        }
        if let Some(b) = flag("add_prefix_space")? {
            self.add_prefix_space = Some(b);
        }
        if map.contains_key("strip_accents") {
            self.strip_accents = flag("strip_accents")?;
        }
        if let Some(b) = flag("tokenize_chinese_chars")? {
            self.tokenize_chinese_chars = b;
        }
        // A token is a string, or (special_tokens_map.json) an AddedToken
        // object with its `content`.
        let text = |field: &'static str, v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Object(o) => match o.get("content") {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                _ => Err(bad(field, v, "a string or an object with a string `content`")),
            },
            _ => Err(bad(field, v, "a string")),
        };
        let given = |field: &'static str| match map.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => text(field, v).map(Some),
        };
        let tokens: [(&'static str, &mut String); 5] = [
            ("unk_token", &mut self.unk_token),
            ("cls_token", &mut self.cls_token),
            ("sep_token", &mut self.sep_token),
            ("pad_token", &mut self.pad_token),
            ("mask_token", &mut self.mask_token),
        ];
        for (field, slot) in tokens {
            if let Some(t) = given(field)? {
                *slot = t;
            }
        }
        self.bos_token = given("bos_token")?.or(self.bos_token.take());
        self.eos_token = given("eos_token")?.or(self.eos_token.take());
        for field in ["additional_special_tokens", "extra_special_tokens"] {
            // A list; transformers 5 may also name them (an object).
            let listed: Vec<&serde_json::Value> = match map.get(field) {
                None | Some(serde_json::Value::Null) => continue,
                Some(serde_json::Value::Array(a)) => a.iter().collect(),
                Some(serde_json::Value::Object(o)) => o.values().collect(),
                Some(v) => return Err(bad(field, v, "a list of tokens")),
            };
            for v in listed {
                let t = text(field, v)?;
                if !self.extra_special_tokens.contains(&t) {
                    self.extra_special_tokens.push(t);
                }
            }
        }
        match map.get("model_max_length") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Number(n)) => {
                // 1e30 (VERY_LARGE_INTEGER) means no limit.
                self.model_max_length = n.as_f64().filter(|x| (1.0..1e9).contains(x)).map(|x| x as usize);
            }
            Some(v) => return Err(bad("model_max_length", v, "a number")),
        }
        Ok(())
    }
}

impl TokenizerConfig {
    /// Every special token, each once, in transformers' order (bos, eos,
    /// unk, sep, pad, cls, mask, then the extra ones): the order tokens
    /// missing from a vocabulary get their new ids in.
    pub fn special_tokens(&self) -> Vec<String> {
        let named = [
            self.bos_token.as_ref(),
            self.eos_token.as_ref(),
            Some(&self.unk_token),
            Some(&self.sep_token),
            Some(&self.pad_token),
            Some(&self.cls_token),
            Some(&self.mask_token),
        ];
        let mut out: Vec<String> = vec![];
        for t in named.into_iter().flatten().chain(&self.extra_special_tokens) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }
}

impl TextTokenizer {
    /// The tokenizer of a model folder: `tokenizer.json` when there is one
    /// (transformers loads it first), else `spm.model`, else `vocab.txt`,
    /// each with the folder's tokenizer_config.json.
    pub fn from_folder(folder: &Path, max_length: usize) -> Result<TextTokenizer, TokenizeError> {
        let config = TokenizerConfig::from_folder(folder)?;
        // Each file must resolve inside the folder (a stranger's folder may
        // link `spm.model` to anything on the machine).
        if let Some(json) = regular_file_inside(folder, "tokenizer.json")? {
            return TextTokenizer::from_tokenizer_json(&json, &config, max_length);
        }
        if let Some(spm) = regular_file_inside(folder, SPM_MODEL_FILE)? {
            return TextTokenizer::from_spm(&spm, &config, max_length);
        }
        if let Some(vocab) = regular_file_inside(folder, "vocab.txt")? {
            return TextTokenizer::from_vocab(&vocab, &config, max_length);
        }
        Err(TokenizeError::NotFound(folder.to_path_buf()))
    }

    /// A `tokenizer.json` (the special tokens' names from `config`).
    pub fn from_tokenizer_json(
        path: &Path,
        config: &TokenizerConfig,
        max_length: usize,
    ) -> Result<TextTokenizer, TokenizeError> {
        let bytes = read_bounded(path)?;
        // Counted before tokenizers builds its maps: a vocabulary of millions
        // of short entries fits the byte bound and takes gigabytes there.
        if let Some(counts) = json_counts::count(&bytes) {
            let (count, field) = counts.largest();
            if count > MAX_PIECES {
                return Err(TokenizeError::TooManyPieces {
                    path: path.to_path_buf(),
                    count,
                    what: field,
                });
            }
        }
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| TokenizeError::Malformed {
            path: path.to_path_buf(),
            message: match bad_component(&bytes) {
                Some((field, why)) => format!("field `{field}`: {why}"),
                None => e.to_string(),
            },
        })?;
        TextTokenizer::new(inner, path, config, max_length)
    }

    /// DeBERTa-v2/v3's SentencePiece `spm.model` with the settings of
    /// `config`, as transformers 5 reads it ([`sentencepiece`]).
    pub fn from_spm(
        path: &Path,
        config: &TokenizerConfig,
        max_length: usize,
    ) -> Result<TextTokenizer, TokenizeError> {
        let inner = sentencepiece::deberta_v2(path, config)?;
        TextTokenizer::new(inner, path, config, max_length)
    }

    /// BERT's WordPiece tokenizer assembled from `vocab.txt` (one token a
    /// line, ids by line number) and the settings of `config`.
    pub fn from_vocab(
        path: &Path,
        config: &TokenizerConfig,
        max_length: usize,
    ) -> Result<TextTokenizer, TokenizeError> {
        let bytes = read_bounded(path)?;
        let malformed = |message: String| TokenizeError::Malformed {
            path: path.to_path_buf(),
            message,
        };
        // Counted before the vocabulary is built: a 189 MB vocab.txt (under
        // the file bound) of short lines took 5.3 GB and 76 s in tokenizers'
        // maps (issue 25, N15). One bound for every vocabulary.
        let count = vocab_lines(&bytes);
        if count > MAX_PIECES {
            return Err(TokenizeError::TooManyPieces {
                path: path.to_path_buf(),
                count,
                what: "a WordPiece vocabulary",
            });
        }
        let vocab = WordPiece::read_bytes(&bytes).map_err(|e| malformed(e.to_string()))?;
        if vocab.is_empty() {
            return Err(malformed("the vocabulary is empty".into()));
        }
        let id = |role: &'static str, token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| TokenizeError::MissingToken {
                    path: path.to_path_buf(),
                    role,
                    token: token.to_string(),
                })
        };
        let cls = id("cls_token", &config.cls_token)?;
        let sep = id("sep_token", &config.sep_token)?;
        id("unk_token", &config.unk_token)?;
        let model = WordPiece::builder()
            .vocab(vocab.clone())
            .unk_token(config.unk_token.clone())
            .build()
            .map_err(|e| malformed(e.to_string()))?;
        let mut inner = Tokenizer::new(model);
        inner.with_normalizer(Some(BertNormalizer::new(
            true,
            config.tokenize_chinese_chars,
            config.strip_accents,
            config.do_lower_case.unwrap_or(true),
        )));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(
            (config.sep_token.clone(), sep),
            (config.cls_token.clone(), cls),
        )));
        inner.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
        // As transformers registers them: special, never split or normalised.
        let specials: Vec<AddedToken> = [
            &config.pad_token,
            &config.unk_token,
            &config.cls_token,
            &config.sep_token,
            &config.mask_token,
        ]
        .into_iter()
        .filter(|t| vocab.contains_key(t.as_str()))
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
        inner.add_special_tokens(&specials);
        TextTokenizer::new(inner, path, config, max_length)
    }

    fn new(
        inner: Tokenizer,
        path: &Path,
        config: &TokenizerConfig,
        max_length: usize,
    ) -> Result<TextTokenizer, TokenizeError> {
        let pad = inner
            .token_to_id(&config.pad_token)
            .ok_or_else(|| TokenizeError::MissingToken {
                path: path.to_path_buf(),
                role: "pad_token",
                token: config.pad_token.clone(),
            })?;
        let special = SpecialIds {
            cls: inner.token_to_id(&config.cls_token),
            sep: inner.token_to_id(&config.sep_token),
            pad,
            pad_token: config.pad_token.clone(),
            mask: inner.token_to_id(&config.mask_token),
            unk: inner.token_to_id(&config.unk_token),
        };
        // The pair template's specials ([CLS] A [SEP] B [SEP]) must fit.
        let least = inner.get_post_processor().map_or(0, |p| {
            use tokenizers::PostProcessor;
            p.added_tokens(true)
        }) + 1;
        if max_length < least {
            return Err(TokenizeError::MaxLength {
                got: max_length,
                least,
            });
        }
        Ok(TextTokenizer {
            inner,
            path: path.to_path_buf(),
            max_length,
            special,
        })
    }

    /// Encodes a batch (character offsets, as Python's tokenizers gives
    /// them), truncated as asked at the model's limit and padded to the
    /// longest. With `OnlySecond`, overflowing windows are in each
    /// encoding's `get_overflowing()`, padded like the rest.
    pub fn encode(&mut self, inputs: &[TextInput], truncate: Truncate) -> Result<Batch, TokenizeError> {
        let mut encodings = self.encode_unpadded(inputs, truncate)?;
        // Overflowing windows are padded within their own encoding only:
        // bring every window of the batch to one length.
        let seq = encodings
            .iter()
            .flat_map(|e| std::iter::once(e.len()).chain(e.get_overflowing().iter().map(Encoding::len)))
            .max()
            .unwrap_or(0);
        for e in &mut encodings {
            pad_to(e, seq, &self.special);
            for o in e.get_overflowing_mut() {
                pad_to(o, seq, &self.special);
            }
        }
        Ok(Batch {
            encodings,
            seq,
            pad: self.special.pad,
        })
    }

    /// Encodes each input at its own length (no padding), truncated as
    /// asked at the model's limit: what a length-aware batcher sorts, and
    /// pads per batch with [`model_inputs`].
    pub fn encode_unpadded(
        &mut self,
        inputs: &[TextInput],
        truncate: Truncate,
    ) -> Result<Vec<Encoding>, TokenizeError> {
        let (strategy, max_length, stride) = match truncate {
            Truncate::LongestFirst => (TruncationStrategy::LongestFirst, self.max_length, 0),
            Truncate::OnlyFirst => (TruncationStrategy::OnlyFirst, self.max_length, 0),
            Truncate::OnlySecond { max_length, stride } => (
                TruncationStrategy::OnlySecond,
                max_length.min(self.max_length),
                stride,
            ),
            Truncate::Windows { stride } => (TruncationStrategy::LongestFirst, self.max_length, stride),
        };
        self.inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy,
                stride,
            }))
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        self.inner.with_padding(None);
        let inputs: Vec<EncodeInput> = inputs
            .iter()
            .map(|i| match *i {
                TextInput::Single(a) => EncodeInput::Single(a.into()),
                TextInput::Pair(a, b) => EncodeInput::Dual(a.into(), b.into()),
            })
            .collect();
        self.inner
            .encode_batch_char_offsets(inputs, true)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    /// The token text of an id (`##ing`, `[MASK]`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Ids back to text, as transformers' `tokenizer.decode` (the
    /// tokenizer's decoder, its clean-up of spaces before punctuation).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizeError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    /// Tokens back to text, as transformers' `convert_tokens_to_string`.
    pub fn tokens_to_string(&self, tokens: Vec<String>) -> Result<String, TokenizeError> {
        match self.inner.get_decoder() {
            Some(d) => d.decode(tokens).map_err(|e| TokenizeError::Encode(e.to_string())),
            None => Ok(tokens.join(" ")),
        }
    }

    /// Whether the model marks word pieces with a prefix (`##`): then a
    /// token is a subword when its text and its span differ in length
    /// (transformers asks the model for `continuing_subword_prefix`).
    pub fn has_subword_prefix(&self) -> bool {
        use tokenizers::ModelWrapper;
        match self.inner.get_model() {
            ModelWrapper::WordPiece(w) => !w.continuing_subword_prefix.is_empty(),
            ModelWrapper::BPE(b) => b
                .continuing_subword_prefix
                .as_ref()
                .is_some_and(|p| !p.is_empty()),
            _ => false,
        }
    }

    /// The special tokens the template adds around a text (`pair`: around
    /// two): what a window's length leaves for the text itself.
    pub fn added_tokens(&self, pair: bool) -> usize {
        use tokenizers::PostProcessor;
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair))
    }

    /// One input encoded whole (no truncation, no padding), with the
    /// special tokens when asked: what a server measures against its
    /// length limit before any work, and what `/tokenize` shows.
    pub fn encode_whole(
        &mut self,
        input: TextInput,
        add_special_tokens: bool,
    ) -> Result<Encoding, TokenizeError> {
        self.inner
            .with_truncation(None)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        self.inner.with_padding(None);
        let input: EncodeInput = match input {
            TextInput::Single(a) => EncodeInput::Single(a.into()),
            TextInput::Pair(a, b) => EncodeInput::Dual(a.into(), b.into()),
        };
        self.inner
            .encode_char_offsets(input, add_special_tokens)
            .map_err(|e| TokenizeError::Encode(e.to_string()))
    }

    /// How many tokens `text` is alone, without special tokens.
    pub fn count_tokens(&mut self, text: &str) -> Result<usize, TokenizeError> {
        self.inner
            .with_truncation(None)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?;
        self.inner.with_padding(None);
        Ok(self
            .inner
            .encode_char_offsets(text, false)
            .map_err(|e| TokenizeError::Encode(e.to_string()))?
            .len())
    }
}

/// The top-level field of a tokenizer.json that does not parse, with
/// serde's reason: the whole file's error names only an untagged enum.
fn bad_component(bytes: &[u8]) -> Option<(&'static str, String)> {
    use tokenizers::{
        DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    };
    fn check<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Option<String> {
        serde_json::from_value::<Option<T>>(v.clone())
            .err()
            .map(|e| e.to_string())
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    type Check = fn(&serde_json::Value) -> Option<String>;
    let checks: [(&'static str, Check); 7] = [
        ("normalizer", check::<NormalizerWrapper>),
        ("pre_tokenizer", check::<PreTokenizerWrapper>),
        ("model", check::<ModelWrapper>),
        ("post_processor", check::<PostProcessorWrapper>),
        ("decoder", check::<DecoderWrapper>),
        ("truncation", check::<TruncationParams>),
        ("padding", check::<PaddingParams>),
    ];
    checks.into_iter().find_map(|(field, check)| {
        let value = json.get(field)?;
        check(value).map(|why| (field, format!("{why} (value: {})", excerpt(value))))
    })
}

/// A JSON value shown in an error, cut to a readable length.
fn excerpt(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn pad_to(e: &mut Encoding, seq: usize, special: &SpecialIds) {
    if e.len() < seq {
        e.pad(seq, special.pad, 0, &special.pad_token, PaddingDirection::Right);
    }
}

impl Batch {
    /// The model inputs of the inputs' own encodings (no overflow).
    pub fn inputs(&self) -> NamedTensors {
        let refs: Vec<&Encoding> = self.encodings.iter().collect();
        model_inputs(&refs, self.seq, self.pad)
    }
}

/// `input_ids`, `attention_mask`, `token_type_ids` as int64 `[B, seq]` for
/// encodings of any length up to `seq`, each padded on the right (`pad`,
/// attention 0, type 0) as [`TextTokenizer::encode`] pads: a batcher
/// tokenizes once, unpadded, and pads each batch to its own length here.
pub fn model_inputs(rows: &[&Encoding], seq: usize, pad: u32) -> NamedTensors {
    let column = |f: &dyn Fn(&Encoding) -> &[u32], pad: u32| -> HostTensor {
        let mut data = Vec::with_capacity(rows.len() * seq);
        for e in rows {
            let values = f(e);
            data.extend(values.iter().take(seq).map(|&x| x as i64));
            data.resize(data.len() + seq.saturating_sub(values.len()), pad as i64);
        }
        HostTensor::i64(vec![rows.len(), seq], data)
    };
    NamedTensors::from([
        ("input_ids".to_string(), column(&|e| e.get_ids(), pad)),
        (
            "attention_mask".to_string(),
            column(&|e| e.get_attention_mask(), 0),
        ),
        ("token_type_ids".to_string(), column(&|e| e.get_type_ids(), 0)),
    ])
}
