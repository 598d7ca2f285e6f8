//! BertModel: embeddings → N encoder layers → pooler, as transformers
//! computes it in eval mode (dropout is the identity), then the task head.

use crate::config::{LayerAttention, PositionEmbeddingType};
use crate::family::{FeedForward, NormPlacement, Positions, QkvProjection};
use crate::ir::{BinaryOp, DType, Dim, Op, Shape, Tensor, UnaryOp, Value, BATCH, SEQUENCE};

use super::{BuildError, Builder, ModelSpec};

impl Builder<'_> {
    pub(super) fn model(&mut self, spec: &ModelSpec) -> Result<(), BuildError> {
        let family = self.config.family.spec();
        let ids_shape = Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE)]);
        let input_ids = self.g.add_input("input_ids", DType::I64, ids_shape.clone())?;
        let attention_mask = self
            .g
            .add_input("attention_mask", DType::I64, ids_shape.clone())?;
        // Inputs as Optimum names them: token types only where the family reads them.
        let token_type_ids = match family.token_types.is_input(self.config.type_vocab_size) {
            true => Some(self.g.add_input("token_type_ids", DType::I64, ids_shape)?),
            false => None,
        };

        let mut hidden = self.embeddings(input_ids, token_type_ids)?;
        let mut mask = self.extended_attention_mask(attention_mask)?;
        if family.disentangled.is_some() {
            hidden = self.disentangled_setup(hidden, attention_mask)?;
        }
        let embedded = hidden;
        if let Some(table) = family.bucketed_relative_bias {
            mask = self.mpnet_score_bias(hidden, mask, table)?;
        }
        let local_mask = self.sliding_window_mask(mask, hidden)?;
        for i in 0..self.config.encoder_layers() {
            let mask = match (self.config.layer_attention(i), local_mask) {
                (LayerAttention::SlidingAttention, Some(local)) => local,
                _ => mask,
            };
            hidden = match family.norms {
                NormPlacement::Post => self.encoder_layer(hidden, mask, i)?,
                NormPlacement::Pre { .. } => self.pre_norm_layer(hidden, mask, i)?,
            };
            if i == 0 {
                hidden = self.conv_layer(embedded, hidden)?;
            }
        }
        if let NormPlacement::Pre { final_norm, .. } = family.norms {
            hidden = self.layer_norm(hidden, final_norm)?;
        }
        let pooled = match spec.pooler {
            true => Some(self.pooler(hidden)?),
            false => None,
        };
        self.head(spec, hidden, pooled, attention_mask)
    }

    /// word[input_ids] + token_type[token_type_ids] + position[ids], then
    /// layer norm, then (ELECTRA, ALBERT) the projection from
    /// `embedding_size` to the hidden size.
    fn embeddings(&mut self, input_ids: Value, token_type_ids: Option<Value>) -> Result<Value, BuildError> {
        let normed = self.embedding_sum(input_ids, token_type_ids)?;
        self.embedding_projection(normed)
    }

    /// The embeddings before any projection. BERT's position ids are a
    /// slice of the `position_ids` buffer up to the run-time sequence
    /// length, as transformers takes them; RoBERTa's count real tokens.
    fn embedding_sum(
        &mut self,
        input_ids: Value,
        token_type_ids: Option<Value>,
    ) -> Result<Value, BuildError> {
        let word_table = self.param("embeddings.word_embeddings.weight")?;
        let words = self.g.add(
            "embeddings.word_embeddings",
            Op::Gather { axis: 0 },
            &[word_table, input_ids],
        )?;
        let sum = match token_type_ids {
            Some(token_type_ids) => {
                let tt_table = self.param("embeddings.token_type_embeddings.weight")?;
                let types = self.g.add(
                    "embeddings.token_type_embeddings",
                    Op::Gather { axis: 0 },
                    &[tt_table, token_type_ids],
                )?;
                self.binary("embeddings.add_token_type", BinaryOp::Add, words, types)?
            }
            None => self.constant_token_type(words)?,
        };
        if self.config.position_embedding_type != PositionEmbeddingType::Absolute {
            // transformers adds position embeddings only for the absolute
            // type; relative models still carry the (unused) table.
            return self.embedding_norm(sum);
        }
        match self.config.family.spec().positions {
            Positions::Sequential => {}
            Positions::SequentialWhenBiased if self.config.has_position_table() => {}
            Positions::FromPadding => {
                let pos_ids = self.padding_position_ids(input_ids)?;
                return self.add_positions(sum, pos_ids);
            }
            // Positions enter every layer's attention instead; EuroBERT's
            // layers read the token embeddings unnormed.
            Positions::Rotary(_) | Positions::SequentialWhenBiased => {
                return match self.config.family.spec().norms.embedding_norm() {
                    true => self.embedding_norm(sum),
                    false => Ok(sum),
                };
            }
        }

        let max_pos = self.config.max_position_embeddings;
        let all_pos: Vec<i64> = (0..max_pos as i64).collect();
        let pos_buffer = self.g.add_const(
            "embeddings.position_ids",
            Tensor::from_i64(vec![1, max_pos], &all_pos),
        )?;
        let shape = self.g.add("embeddings.input_shape", Op::Shape, &[input_ids])?;
        let one = self.g.add_const("embeddings.seq_axis", Tensor::scalar_i64(1))?;
        let seq = self
            .g
            .add("embeddings.seq_len", Op::Gather { axis: 0 }, &[shape, one])?;
        let seq = self
            .g
            .add("embeddings.seq_len_1d", Op::Unsqueeze { axes: vec![0] }, &[seq])?;
        let zero = self
            .g
            .add_const("embeddings.slice_start", Tensor::vec_i64(&[0]))?;
        let axis = self.g.add_const("embeddings.slice_axis", Tensor::vec_i64(&[1]))?;
        let pos_ids = self.g.add(
            "embeddings.position_ids_slice",
            Op::Slice,
            &[pos_buffer, zero, seq, axis],
        )?;
        self.add_positions(sum, pos_ids)
    }

    /// `LayerNorm(sum + position_table[pos_ids])`.
    fn add_positions(&mut self, sum: Value, pos_ids: Value) -> Result<Value, BuildError> {
        let pos_table = self.param("embeddings.position_embeddings.weight")?;
        let positions = self.g.add(
            "embeddings.position_embeddings",
            Op::Gather { axis: 0 },
            &[pos_table, pos_ids],
        )?;
        let sum = self.binary("embeddings.add_position", BinaryOp::Add, sum, positions)?;
        self.embedding_norm(sum)
    }

    /// `(1 − mask) · lowest_f32`, shaped [B, 1, 1, S] to broadcast over
    /// heads and query positions; built once and shared by every layer.
    fn extended_attention_mask(&mut self, mask: Value) -> Result<Value, BuildError> {
        let m = self.g.add(
            "attention_mask.unsqueeze",
            Op::Unsqueeze { axes: vec![1, 2] },
            &[mask],
        )?;
        let m = self
            .g
            .add("attention_mask.cast", Op::Cast { to: DType::F32 }, &[m])?;
        let one = self.scalar("attention_mask.one", 1.0)?;
        let inv = self.binary("attention_mask.invert", BinaryOp::Sub, one, m)?;
        let lowest = self.scalar("attention_mask.lowest", f32::MIN)?;
        self.binary("attention_mask.additive", BinaryOp::Mul, inv, lowest)
    }

    fn encoder_layer(&mut self, x: Value, mask: Value, i: usize) -> Result<Value, BuildError> {
        let p = format!("encoder.layer.{i}");
        let attn = self.self_attention(x, mask, &format!("{p}.attention.self"), i)?;
        let dense = self.linear(attn, &format!("{p}.attention.output.dense"))?;
        let res = self.binary(&format!("{p}.attention.output.residual"), BinaryOp::Add, dense, x)?;
        let h = self.layer_norm(res, &format!("{p}.attention.output.LayerNorm"))?;

        let act = self.feed_forward(h, &p)?;
        let out = self.linear(act, &format!("{p}.output.dense"))?;
        let res = self.binary(&format!("{p}.output.residual"), BinaryOp::Add, out, h)?;
        self.layer_norm(res, &format!("{p}.output.LayerNorm"))
    }

    /// The feed-forward block of layer `p` up to `output.dense`'s input.
    pub(super) fn feed_forward(&mut self, h: Value, p: &str) -> Result<Value, BuildError> {
        match self.config.family.spec().feed_forward {
            FeedForward::Plain => {
                let inter = self.linear(h, &format!("{p}.intermediate.dense"))?;
                self.activation(inter, self.config.hidden_act, &format!("{p}.intermediate.act"))
            }
            FeedForward::Gated => self.gated_linear_unit(h, p),
            FeedForward::PackedGated => self.packed_gated_linear_unit(h, p, false),
            FeedForward::PackedGatedActivatedFirst => self.packed_gated_linear_unit(h, p, true),
        }
    }

    /// softmax(Q·Kᵀ / √d + mask) · V over heads, merged back to [B, S, H],
    /// for layer `layer` (whose rotary θ it uses).
    pub(super) fn self_attention(
        &mut self,
        x: Value,
        mask: Value,
        p: &str,
        layer: usize,
    ) -> Result<Value, BuildError> {
        let (heads, head_size) = (self.config.num_attention_heads, self.config.head_size());
        let split = self.g.add_const(
            &format!("{p}.split_heads_shape"),
            Tensor::vec_i64(&[0, 0, heads as i64, head_size as i64]),
        )?;
        // Grouped-query attention splits keys and values into fewer heads.
        let kv_heads = self.config.key_value_heads();
        let kv_split = match kv_heads == heads {
            true => split,
            false => self.g.add_const(
                &format!("{p}.split_kv_heads_shape"),
                Tensor::vec_i64(&[0, 0, kv_heads as i64, head_size as i64]),
            )?,
        };
        let family = self.config.family.spec();
        let qkv = match family.qkv {
            QkvProjection::Separate | QkvProjection::SeparateGrouped => None,
            QkvProjection::Fused => Some(self.linear(x, &format!("{p}.qkv"))?),
            QkvProjection::FusedPerHead => Some(self.per_head_qkv(x, p)?),
        };
        let hidden = self.config.hidden_size;
        let project =
            |b: &mut Self, name: &str, part: usize, perm: Vec<usize>| -> Result<(Value, Value), BuildError> {
                let y = match qkv {
                    None => b.linear(x, &format!("{p}.{name}"))?,
                    // Rows [q | k | v] of the fused Linear.
                    Some(qkv) => {
                        b.slice_last(qkv, part * hidden, (part + 1) * hidden, &format!("{p}.{name}"))?
                    }
                };
                let y = b.per_head_bias(y, name, p)?;
                let split = match name {
                    "query" => split,
                    _ => kv_split,
                };
                let mut split_y =
                    b.g.add(&format!("{p}.{name}.split_heads"), Op::Reshape, &[y, split])?;
                if let (Positions::Rotary(pairs), true) = (family.positions, name != "value") {
                    split_y = b.rotate(split_y, pairs, layer, &format!("{p}.{name}.rotary"))?;
                }
                if name != "query" && kv_heads != heads {
                    split_y = b.repeat_kv_heads(split_y, heads, kv_heads, &format!("{p}.{name}"))?;
                }
                let split_y = b.g.add(
                    &format!("{p}.{name}.transpose"),
                    Op::Transpose { perm },
                    &[split_y],
                )?;
                // The projection [B, S, H] too: a sliding layer's blind rows read V whole.
                Ok((split_y, y))
            };
        let (q, _) = project(self, "query", 0, vec![0, 2, 1, 3])?;
        let (k, _) = project(self, "key", 1, vec![0, 2, 3, 1])?;
        let (v, value) = project(self, "value", 2, vec![0, 2, 1, 3])?;

        let mut scores = self.g.add(&format!("{p}.scores"), Op::MatMul, &[q, k])?;
        let q_split = self.g.inputs_of(q.node)[0].expect("transpose input");
        let k_split = self.g.inputs_of(k.node)[0].expect("transpose input");
        let divisor = head_size * self.config.disentangled.as_ref().map_or(1, |d| d.scale_factor());
        let scale = self.scalar(&format!("{p}.scale"), (divisor as f32).sqrt())?;
        let scores = match self.config.position_embedding_type {
            // DeBERTa's relative terms come out already divided by the
            // scale (through their tables) and are added after it.
            PositionEmbeddingType::Absolute => {
                let scaled = self.binary(&format!("{p}.scaled"), BinaryOp::Div, scores, scale)?;
                match self.disentangled_scores(q_split, k_split, scale, p)? {
                    Some(bias) => {
                        self.binary(&format!("{p}.relative_scores"), BinaryOp::Add, scaled, bias)?
                    }
                    None => scaled,
                }
            }
            _ => {
                let bias = self.relative_position_scores(q_split, k_split, p)?;
                scores = self.binary(&format!("{p}.relative_scores"), BinaryOp::Add, scores, bias)?;
                self.binary(&format!("{p}.scaled"), BinaryOp::Div, scores, scale)?
            }
        };
        let scores = self.binary(&format!("{p}.masked"), BinaryOp::Add, scores, mask)?;
        let probs = self
            .g
            .add(&format!("{p}.softmax"), Op::Softmax { axis: -1 }, &[scores])?;
        let ctx = self.g.add(&format!("{p}.context"), Op::MatMul, &[probs, v])?;
        let ctx = self.g.add(
            &format!("{p}.context.transpose"),
            Op::Transpose {
                perm: vec![0, 2, 1, 3],
            },
            &[ctx],
        )?;
        let merge = self.g.add_const(
            &format!("{p}.merge_heads_shape"),
            Tensor::vec_i64(&[0, 0, self.config.hidden_size as i64]),
        )?;
        let context = self
            .g
            .add(&format!("{p}.context.merge_heads"), Op::Reshape, &[ctx, merge])?;
        let context = self.sliding_context(context, value, layer, p)?;
        self.padded_queries_uniform(context, value, p)
    }

    /// The attention output `context` [B, S, H] with the rows where `rows`
    /// ([B, S, 1]) is true replaced by the mean of the layer's `value`
    /// [B, S, H] (`{p}.context.uniform`), chosen by a `Where` named
    /// `{p}.context.{why}`: the output of a query that attends uniformly
    /// over all keys, which is what PyTorch's eager attention gives a row
    /// with every score at `f32::MIN` (ModernBERT's blind sliding rows,
    /// DeBERTa's padded queries) and what runtimes' kernels do not all give.
    pub(super) fn uniform_rows(
        &mut self,
        context: Value,
        value: Value,
        rows: Value,
        p: &str,
        why: &str,
    ) -> Result<Value, BuildError> {
        let uniform = self.g.add(
            &format!("{p}.context.uniform"),
            Op::ReduceMean {
                axes: vec![1],
                keepdims: true,
            },
            &[value],
        )?;
        Ok(self.g.add(
            &format!("{p}.context.{why}"),
            Op::Where,
            &[rows, uniform, context],
        )?)
    }

    /// tanh(dense(hidden[:, 0])).
    fn pooler(&mut self, hidden: Value) -> Result<Value, BuildError> {
        let zero = self
            .g
            .add_const("pooler.first_token_index", Tensor::scalar_i64(0))?;
        let first = self
            .g
            .add("pooler.first_token", Op::Gather { axis: 1 }, &[hidden, zero])?;
        let dense = self.linear(first, self.config.family.spec().pooler.linear)?;
        self.unary("pooler.activation", UnaryOp::Tanh, dense)
    }
}
