//! SentencePiece's `ModelProto` (sentencepiece_model.proto, proto2): the
//! subset a Unigram tokenizer is made from, as hand-written prost types.
//!
//! Written by hand, as src/onnx/proto.rs is, to keep protoc out of the
//! build; field numbers are sentencepiece_model.proto's, and every field
//! not listed (the normalizer spec, self-test data, most of the trainer
//! spec) is skipped when decoding. proto2 defaults are applied by the
//! accessors, not by prost. `precompiled_charsmap` is not read: transformers
//! 5's DeBERTa-v2 tokenizer no longer applies the SentencePiece normalizer.

use prost::Message;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pub pieces: Vec<SentencePiece>,
    #[prost(message, optional, tag = "2")]
    pub trainer_spec: Option<TrainerSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SentencePiece {
    #[prost(string, optional, tag = "1")]
    pub piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub score: Option<f32>,
    /// `SentencePiece.Type`, kept as its number so that an unknown value
    /// is reported with the piece it belongs to ([`PieceType::from_number`]).
    #[prost(int32, optional, tag = "3")]
    pub r#type: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TrainerSpec {
    /// `ModelType`: UNIGRAM = 1 (the default), BPE = 2, WORD = 3, CHAR = 4.
    #[prost(int32, optional, tag = "3")]
    pub model_type: Option<i32>,
    #[prost(int32, optional, tag = "40")]
    pub unk_id: Option<i32>,
}

/// `SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    /// The type of a piece as stored (absent: NORMAL, proto2's default).
    pub fn from_number(n: Option<i32>) -> Option<PieceType> {
        Some(match n.unwrap_or(1) {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// The Unigram model type's number (`TrainerSpec.model_type`'s default).
pub const UNIGRAM: i32 = 1;

/// Counts the top-level `pieces` of an encoded ModelProto without
/// decoding anything: decoding allocates a piece (~40 bytes) for every
/// 2 bytes of input, so the count is checked first. Errors name the byte
/// offset where the wire format breaks.
pub fn count_pieces(bytes: &[u8]) -> Result<usize, String> {
    let mut at = 0;
    let mut pieces = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (field, wire_type) = (key >> 3, key & 7);
        let skip = match wire_type {
            0 => {
                varint(bytes, &mut at)?;
                0
            }
            1 => 8,
            2 => {
                let len = varint(bytes, &mut at)?;
                if field == 1 {
                    pieces += 1;
                }
                usize::try_from(len).map_err(|_| format!("byte {at}: length {len} too large"))?
            }
            5 => 4,
            other => return Err(format!("byte {at}: wire type {other} where a field was expected")),
        };
        if skip > bytes.len() - at {
            return Err(format!(
                "byte {at}: field {field} needs {skip} bytes, {} remain (a truncated file?)",
                bytes.len() - at
            ));
        }
        at += skip;
    }
    Ok(pieces)
}

/// A protobuf varint at `*at`, advancing past it.
fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*at) else {
            return Err(format!(
                "byte {at}: the file ends inside a number (a truncated file?)"
            ));
        };
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err(format!("byte {at}: a number longer than 10 bytes"))
}

/// Decodes a ModelProto (after [`count_pieces`] has bounded it).
pub fn decode(bytes: &[u8]) -> Result<ModelProto, String> {
    ModelProto::decode(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, score: f32, t: i32) -> SentencePiece {
        SentencePiece {
            piece: Some(text.into()),
            score: Some(score),
            r#type: Some(t),
        }
    }

    #[test]
    fn pieces_are_counted_as_prost_decodes_them() {
        let model = ModelProto {
            pieces: vec![
                piece("[PAD]", 0.0, 3),
                piece("▁the", -3.5, 1),
                piece("s", -4.0, 1),
            ],
            trainer_spec: Some(TrainerSpec {
                model_type: Some(UNIGRAM),
                unk_id: Some(0),
            }),
        };
        let bytes = model.encode_to_vec();
        assert_eq!(count_pieces(&bytes), Ok(3));
        assert_eq!(decode(&bytes).unwrap(), model);
        // Cut anywhere: an error, or (cut between fields) the pieces
        // before the cut, counted as prost decodes them.
        for cut in 0..bytes.len() {
            if let (Ok(n), Ok(m)) = (count_pieces(&bytes[..cut]), decode(&bytes[..cut])) {
                assert_eq!(n, m.pieces.len(), "cut at {cut}");
            }
        }
        let err = count_pieces(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn piece_types_outside_the_enum_are_none() {
        assert_eq!(PieceType::from_number(None), Some(PieceType::Normal));
        assert_eq!(PieceType::from_number(Some(3)), Some(PieceType::Control));
        assert_eq!(PieceType::from_number(Some(0)), None);
        assert_eq!(PieceType::from_number(Some(7)), None);
    }
}
