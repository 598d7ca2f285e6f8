//! onnxruntime's `EmbedLayerNormalization`: word + position + segment
//! embeddings, then a layer norm; and its mask index, the number of real
//! tokens of each row (`ReduceSum` of the int32 mask, as its kernel counts
//! the ones). Positions are 0..S unless `position_ids` are given; the
//! segment term is added when both segment ids and the table are.

use crate::ir::{BinaryOp, Op, Tensor, Value};

use super::ort_forms::Writer;

pub(super) fn standard(w: &mut Writer, epsilon: f32) -> Result<Vec<Option<Value>>, String> {
    let ids = w.required(0, "input_ids")?;
    let (word, position) = (
        w.required(2, "word_embedding")?,
        w.required(3, "position_embedding")?,
    );
    let (gamma, beta) = (w.required(5, "gamma")?, w.required(6, "beta")?);
    let words = w.op("words", Op::Gather { axis: 0 }, &[word, ids])?;
    let positions = match w.input(8) {
        Some(position_ids) => w.op("positions", Op::Gather { axis: 0 }, &[position, position_ids])?,
        // The first S rows of the table, broadcast over the batch.
        None => {
            let len = w.dim(ids, 1)?;
            let zero = w.constant("positions.start", Tensor::vec_i64(&[0]))?;
            w.op("positions", Op::Slice, &[position, zero, len, zero])?
        }
    };
    let mut sum = w.op("sum", Op::Binary(BinaryOp::Add), &[words, positions])?;
    if let (Some(segment_ids), Some(segments)) = (w.input(1), w.input(4)) {
        let rows = w.op("segments", Op::Gather { axis: 0 }, &[segments, segment_ids])?;
        sum = w.op("sum", Op::Binary(BinaryOp::Add), &[sum, rows])?;
    }
    let norm = w.op(
        "layer_norm",
        Op::LayerNorm { axis: -1, epsilon },
        &[sum, gamma, beta],
    )?;
    let mask_index = match w.input(7) {
        Some(mask) => Some(w.op(
            "mask_index",
            Op::ReduceSum {
                axes: vec![1],
                keepdims: false,
            },
            &[mask],
        )?),
        None if w.output_read(1) => return Err("its mask_index is read, but it has no mask input".into()),
        None => None,
    };
    Ok(vec![Some(norm), mask_index])
}
