//! MPNet's relative attention bias, as transformers' `MPNetEncoder`
//! computes it: each (query l, key r) pair falls in one of 32 buckets of
//! the distance r − l (exact up to 8 each way, then logarithmic up to 128),
//! and a learned [buckets, heads] table gives each head's score bias. One
//! bias [1, heads, S, S] is shared by every layer and added to the scaled
//! scores, as the padding mask is; the builder adds the two once, so the
//! sum is the one additive mask fuse_attention hands the fused Attention.

use crate::family::MPNET_BUCKETS;
use crate::ir::{BinaryOp, Op, Tensor, Value};

use super::{BuildError, Builder};

/// Distances from which every bucket is the last one.
const MAX_DISTANCE: i64 = 128;

/// transformers' `MPNetEncoder.relative_position_bucket` for one
/// `relative_position = key − query`, with its f32 arithmetic (the bucket
/// boundaries depend on how the logarithm rounds).
pub fn mpnet_bucket(relative_position: i64) -> i64 {
    let half = MPNET_BUCKETS as i64 / 2;
    let n = -relative_position;
    let mut bucket = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        return bucket + n;
    }
    let ratio = (n as f32 / max_exact as f32).ln();
    let range = (MAX_DISTANCE as f64 / max_exact as f64).ln() as f32;
    let large = max_exact + (ratio / range * (half - max_exact) as f32) as i64;
    bucket += large.min(half - 1);
    bucket
}

impl Builder<'_> {
    /// `relative_attention_bias[bucket(r − l)]` as [1, heads, S, S], plus
    /// the extended padding mask [B, 1, 1, S]: the additive mask of every
    /// layer. The buckets are a constant lookup by `l − r + max − 1` (the
    /// distance index relative_key models use), so no float op decides them
    /// at run time.
    /// `p` names the table (the family table's `bucketed_relative_bias`).
    pub(super) fn mpnet_score_bias(
        &mut self,
        hidden: Value,
        mask: Value,
        p: &str,
    ) -> Result<Value, BuildError> {
        let index = self.distance_index(hidden)?;
        let max = self.config.max_position_embeddings as i64;
        // index k = l − r + max − 1, so r − l = max − 1 − k.
        let buckets: Vec<i64> = (0..2 * max - 1).map(|k| mpnet_bucket(max - 1 - k)).collect();
        let lut = self.g.add_const(
            &format!("{p}.buckets"),
            Tensor::from_i64(vec![buckets.len()], &buckets),
        )?;
        let bucket = self
            .g
            .add(&format!("{p}.bucket"), Op::Gather { axis: 0 }, &[lut, index])?;
        let table = self.param(&format!("{p}.weight"))?;
        let values = self
            .g
            .add(&format!("{p}.values"), Op::Gather { axis: 0 }, &[table, bucket])?;
        let values = self.g.add(
            &format!("{p}.heads_first"),
            Op::Transpose { perm: vec![2, 0, 1] },
            &[values],
        )?;
        let values = self.g.add(
            &format!("{p}.unsqueeze"),
            Op::Unsqueeze { axes: vec![0] },
            &[values],
        )?;
        self.binary(&format!("{p}.with_mask"), BinaryOp::Add, values, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::mpnet_bucket;

    #[test]
    fn buckets_follow_transformers() {
        // Exact within 8 each way; keys before the query (r < l) in 0..16,
        // keys after it in 16..32.
        assert_eq!(mpnet_bucket(0), 0);
        assert_eq!(mpnet_bucket(-7), 7);
        assert_eq!(mpnet_bucket(7), 16 + 7);
        // Logarithmic from 8 to 128, then the last bucket.
        assert_eq!(mpnet_bucket(-8), 8);
        assert_eq!(mpnet_bucket(-11), 8);
        assert_eq!(mpnet_bucket(-12), 9);
        assert_eq!(mpnet_bucket(-127), 15);
        assert_eq!(mpnet_bucket(-1000), 15);
        // Each side of every logarithmic boundary, as torch's f32 ops give
        // them (numpy float32: log(n / 8) / f32(ln 16) · 8 truncated); at
        // 16, 32, 64 the quotient is exactly 2, 4, 6 in f32.
        for (n, bucket) in [
            (15, 9),
            (16, 10),
            (22, 10),
            (23, 11),
            (31, 11),
            (32, 12),
            (45, 12),
            (46, 13),
            (63, 13),
            (64, 14),
            (90, 14),
            (91, 15),
            (128, 15),
        ] {
            assert_eq!(mpnet_bucket(-n), bucket, "distance {n}");
            assert_eq!(mpnet_bucket(n), 16 + bucket, "distance -{n}");
        }
        assert_eq!(mpnet_bucket(1000), 31);
    }
}
