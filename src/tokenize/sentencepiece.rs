//! DeBERTa-v2/v3's `spm.model` (a SentencePiece Unigram model) as a
//! `tokenizers` tokenizer, assembled as transformers 5.23's
//! `DebertaV2Tokenizer` assembles it when a folder has no tokenizer.json
//! (hub DeBERTa folders often have none):
//! - the model: Unigram over every piece with its score, in file order (ids
//!   are positions), no byte fallback, `[UNK]` at the unk token's piece;
//! - the normalizer: Lowercase (only with `do_lower_case`), then
//!   Replace(`\s{2,}|[\n\r\t]` → " "), NFC, right-strip. transformers 5 no
//!   longer applies SentencePiece's own NFKC charsmap, so neither does this;
//! - the pre-tokenizer: Punctuation (isolated, only with `split_by_punct`),
//!   then Metaspace (`▁`, prepended to every word with `add_prefix_space`,
//!   its default; to the first only without);
//! - `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`, B's part of type 1;
//! - added tokens: SentencePiece's control pieces and the special tokens of
//!   tokenizer_config.json / special_tokens_map.json as special, user-defined
//!   pieces as plain added tokens (as transformers' SpmConverter adds them);
//!   a special token the model lacks (`[MASK]`) gets the next id, or the id
//!   added_tokens.json gives it.

use std::collections::HashSet;
use std::path::Path;

use tokenizers::decoders::metaspace::{Metaspace, PrependScheme};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{Lowercase, Replace, Sequence, Strip, NFC};
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::spm_proto::{self, PieceType, UNIGRAM};
use super::{read_bounded, read_json_object, TokenizeError, TokenizerConfig};

/// The most pieces a model may have: the largest SentencePiece
/// vocabularies in use (mDeBERTa's, XLM-R's) have about 250,000.
pub const MAX_PIECES: usize = 1 << 20;

/// The spm.model at `path` as a tokenizer, with the settings of `config`.
pub(super) fn deberta_v2(path: &Path, config: &TokenizerConfig) -> Result<Tokenizer, TokenizeError> {
    let malformed = |message: String| TokenizeError::Malformed {
        path: path.to_path_buf(),
        message,
    };
    let bytes = read_bounded(path)?;
    let count = spm_proto::count_pieces(&bytes).map_err(malformed)?;
    if count > MAX_PIECES {
        return Err(TokenizeError::TooManyPieces {
            path: path.to_path_buf(),
            count,
            what: "a SentencePiece model",
        });
    }
    let proto = spm_proto::decode(&bytes).map_err(malformed)?;
    drop(bytes);
    let trainer = proto.trainer_spec.unwrap_or_default();
    let field = |field: &'static str, value: String, expected: &'static str| TokenizeError::Field {
        path: path.to_path_buf(),
        field,
        value,
        expected,
    };
    let model_type = trainer.model_type.unwrap_or(UNIGRAM);
    if model_type != UNIGRAM {
        return Err(field(
            "trainer_spec.model_type",
            model_type.to_string(),
            "1 (UNIGRAM): DeBERTa's tokenizer is a Unigram model",
        ));
    }
    let pieces = checked_pieces(path, proto.pieces)?;
    if pieces.is_empty() {
        return Err(malformed("the model has no pieces".into()));
    }
    // transformers finds the unknown piece by the unk token's text; the
    // model's own unk_id stands in when the text is not a piece.
    let unk = match pieces.iter().position(|p| p.text == config.unk_token) {
        Some(at) => at,
        None => {
            let id = trainer.unk_id.unwrap_or(0);
            usize::try_from(id)
                .ok()
                .filter(|&i| i < pieces.len())
                .ok_or_else(|| {
                    field(
                        "trainer_spec.unk_id",
                        id.to_string(),
                        "the id of one of its pieces",
                    )
                })?
        }
    };
    let vocab = pieces.iter().map(|p| (p.text.clone(), p.score)).collect();
    let model = Unigram::from(vocab, Some(unk), false).map_err(|e| malformed(e.to_string()))?;
    let mut inner = Tokenizer::new(model);
    inner.with_normalizer(Some(normalizer(config)?));
    let scheme = match config.add_prefix_space.unwrap_or(true) {
        true => PrependScheme::Always,
        false => PrependScheme::First,
    };
    let mut pre: Vec<PreTokenizerWrapper> = vec![];
    if config.split_by_punct {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(Metaspace::new('▁', scheme, true).into());
    inner.with_pre_tokenizer(Some(PreSequence::new(pre)));
    inner.with_decoder(Some(Metaspace::new('▁', scheme, true)));
    add_tokens(&mut inner, path, &pieces, config)?;
    let id = |role: &'static str, token: &str| {
        inner
            .token_to_id(token)
            .ok_or_else(|| TokenizeError::MissingToken {
                path: path.to_path_buf(),
                role,
                token: token.to_string(),
            })
    };
    let (cls, sep) = (
        id("cls_token", &config.cls_token)?,
        id("sep_token", &config.sep_token)?,
    );
    // BertProcessing is this template: [CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1.
    inner.with_post_processor(Some(BertProcessing::new(
        (config.sep_token.clone(), sep),
        (config.cls_token.clone(), cls),
    )));
    Ok(inner)
}

/// One piece, checked.
struct Piece {
    text: String,
    score: f64,
    kind: PieceType,
}

/// The pieces as SentencePiece itself accepts them: each with a text, no
/// text twice, a finite score and a known type.
fn checked_pieces(path: &Path, raw: Vec<spm_proto::SentencePiece>) -> Result<Vec<Piece>, TokenizeError> {
    let mut seen = HashSet::with_capacity(raw.len());
    let mut pieces = Vec::with_capacity(raw.len());
    for (index, p) in raw.into_iter().enumerate() {
        let text = p.piece.unwrap_or_default();
        let bad = |message: String| TokenizeError::Piece {
            path: path.to_path_buf(),
            index,
            piece: text.clone(),
            message,
        };
        if text.is_empty() {
            return Err(bad("a piece must have a text".into()));
        }
        let score = p.score.unwrap_or(0.0);
        if !score.is_finite() {
            return Err(bad(format!("score {score}: expected a finite number")));
        }
        let Some(kind) = PieceType::from_number(p.r#type) else {
            return Err(bad(format!(
                "type {}: expected 1 to 6 (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE)",
                p.r#type.unwrap_or_default()
            )));
        };
        if !seen.insert(text.clone()) {
            return Err(bad("this text is already an earlier piece".into()));
        }
        pieces.push(Piece {
            text,
            score: f64::from(score),
            kind,
        });
    }
    Ok(pieces)
}

fn normalizer(config: &TokenizerConfig) -> Result<Sequence, TokenizeError> {
    let mut steps: Vec<NormalizerWrapper> = vec![];
    if config.do_lower_case.unwrap_or(false) {
        steps.push(Lowercase.into());
    }
    let whitespace = Replace::new(ReplacePattern::Regex(r"\s{2,}|[\n\r\t]".into()), " ")
        .map_err(|e| TokenizeError::Encode(e.to_string()))?;
    steps.extend([whitespace.into(), NFC.into(), Strip::new(false, true).into()]);
    Ok(Sequence::new(steps))
}

/// Control and user-defined pieces, added_tokens.json's tokens in id
/// order, then the special tokens; each token's id checked against
/// added_tokens.json.
fn add_tokens(
    inner: &mut Tokenizer,
    path: &Path,
    pieces: &[Piece],
    config: &TokenizerConfig,
) -> Result<(), TokenizeError> {
    let specials = config.special_tokens();
    let added = |text: &str| {
        let special = specials.iter().any(|s| s == text);
        // As transformers' converter: never normalised, special or not.
        AddedToken::from(text.to_string(), special).normalized(false)
    };
    let from_model: Vec<AddedToken> = pieces
        .iter()
        .filter(|p| matches!(p.kind, PieceType::Control | PieceType::UserDefined))
        .map(|p| AddedToken::from(p.text.clone(), p.kind == PieceType::Control).normalized(false))
        .collect();
    inner.add_tokens(&from_model);
    let listed = added_tokens_file(path)?;
    for (text, _) in &listed {
        inner.add_tokens(&[added(text)]);
    }
    let special_tokens: Vec<AddedToken> = specials
        .iter()
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    inner.add_special_tokens(&special_tokens);
    for (text, id) in listed {
        let got = inner.token_to_id(&text);
        if got != Some(id) {
            return Err(TokenizeError::Field {
                path: path.with_file_name(ADDED_TOKENS_FILE),
                field: "added token",
                value: format!("{text:?}: {id}"),
                expected: "the id the token gets after the model's pieces (each new token takes the next id)",
            });
        }
    }
    Ok(())
}

/// transformers 4's file of tokens added to a slow tokenizer's vocabulary
/// (`{"[MASK]": 128000}` in the hub's DeBERTa-v3 folders).
const ADDED_TOKENS_FILE: &str = "added_tokens.json";

/// added_tokens.json beside `path`, sorted by id; empty without one.
fn added_tokens_file(path: &Path) -> Result<Vec<(String, u32)>, TokenizeError> {
    let file = path.with_file_name(ADDED_TOKENS_FILE);
    if !file.exists() {
        return Ok(vec![]);
    }
    let mut tokens = vec![];
    for (text, id) in read_json_object(&file)? {
        let id = id
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| TokenizeError::Field {
                path: file.clone(),
                field: "added token",
                value: format!("{text:?}: {id}"),
                expected: "a token id (a non-negative integer)",
            })?;
        tokens.push((text, id));
    }
    tokens.sort_by_key(|&(_, id)| id);
    Ok(tokens)
}
