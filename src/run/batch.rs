//! Length-aware batches: which rows run together, and how long they are
//! padded.
//!
//! A batch costs its rows × its longest row, so rows of similar length
//! belong together: the rows are sorted by token count (ties keep their
//! order, so the plan is deterministic) and cut, shortest first, into
//! batches under a budget of padded tokens and a row limit. Run in input
//! order, one 300-word line made 31 short ones of its batch of 32 pay for
//! its length (measured on the text mix: 4.64 positions computed per real
//! token; sorted, 1.16).
//!
//! The planner sees only lengths, so `bertc run` (a window of lines) and a
//! server (a window of queued requests) plan the same way and route the
//! answers back by row index.

/// How large a batch may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Padded tokens of one batch: its rows × its padded length. A row
    /// longer than this still runs, alone.
    pub max_tokens: usize,
    /// Rows of one batch.
    pub max_rows: usize,
}

/// The default budget of padded tokens per batch, chosen by measurement:
/// MiniLM on the text mix (2,000 lines, 2 threads) ran fastest at 1,024 of
/// the budgets 1,024–16,384, each doubling slower (larger activations fall
/// out of cache), and a run's memory grows with it (README, "Real text").
pub const DEFAULT_MAX_BATCH_TOKENS: usize = 1024;
/// The default row limit: enough for short lines to fill the budget.
pub const DEFAULT_MAX_BATCH_ROWS: usize = 128;

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_tokens: DEFAULT_MAX_BATCH_TOKENS,
            max_rows: DEFAULT_MAX_BATCH_ROWS,
        }
    }
}

/// One batch of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    /// Indices into the planned lengths, shortest first.
    pub rows: Vec<usize>,
    /// The length every row is padded to: its longest row, rounded up by
    /// [`padded_length`].
    pub seq: usize,
}

impl PlannedBatch {
    /// Positions the model computes for this batch.
    pub fn padded_tokens(&self) -> usize {
        self.rows.len() * self.seq
    }
}

/// The length a batch whose longest row has `longest` tokens is padded
/// to: a multiple of [`SEQ_STEP`], never past `max_length` (the model's
/// limit, which no row exceeds).
///
/// Why round at all: tract optimizes one plan per input shape (30–90 ms
/// each for MiniLM), and with sorted rows nearly every batch has a new
/// longest row. Rounding bounds the distinct lengths to
/// `max_length / SEQ_STEP`, so a window's batches share plans; the padding
/// it adds is masked out, as any padding is, but computed. Measured on the
/// text mix (README, "Real text"): at the default budget exact lengths were
/// the slowest, 16 faster than 8 in each round.
pub fn padded_length(longest: usize, max_length: usize) -> usize {
    let rounded = longest.div_ceil(SEQ_STEP) * SEQ_STEP;
    rounded.min(max_length.max(longest))
}

/// The step padded lengths are rounded up to (see [`padded_length`]).
pub const SEQ_STEP: usize = 16;

/// Sorts rows by length and cuts them into batches under `limits`; every
/// row is in exactly one batch. Rows of equal length keep their order.
/// `max_length` caps the rounding of [`padded_length`].
pub fn plan(lengths: &[usize], limits: BatchLimits, max_length: usize) -> Vec<PlannedBatch> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // A stable sort: ties stay in input order.
    order.sort_by_key(|&i| lengths[i]);
    let max_rows = limits.max_rows.max(1);
    let mut batches = vec![];
    let mut current = PlannedBatch { rows: vec![], seq: 0 };
    let mut real = 0;
    for i in order {
        // Sorted ascending: the new row is the longest of the batch.
        let seq = padded_length(lengths[i], max_length);
        let padded = (current.rows.len() + 1) * seq;
        // On a CPU a batch buys little beyond amortised calls, and padding
        // is computed like any token: a row that would pad the batch past a
        // quarter more than its rows' own rounded lengths starts the next
        // one (a few inputs of mixed lengths — a server's — otherwise pay
        // for their longest).
        let lean = padded * 4 <= (real + seq) * 5;
        let fits = current.rows.len() < max_rows && padded <= limits.max_tokens && lean;
        if !fits && !current.rows.is_empty() {
            batches.push(std::mem::replace(
                &mut current,
                PlannedBatch { rows: vec![], seq: 0 },
            ));
        }
        if current.rows.is_empty() {
            real = 0;
        }
        current.rows.push(i);
        current.seq = seq;
        real += seq;
    }
    if !current.rows.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_tokens: usize, max_rows: usize) -> BatchLimits {
        BatchLimits { max_tokens, max_rows }
    }

    #[test]
    fn every_row_is_planned_once_and_batches_keep_to_the_limits() {
        // A long tail, as real text has.
        let lengths: Vec<usize> = (0..500)
            .map(|i| 3 + (i * 7919) % 97 + (i % 50 == 0) as usize * 150)
            .collect();
        let l = limits(1024, 24);
        let batches = plan(&lengths, l, 256);
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.rows.clone()).collect();
        seen.sort();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        for b in &batches {
            assert!(b.rows.len() <= 24);
            assert!(b.padded_tokens() <= 1024, "{b:?}");
            let longest = b.rows.iter().map(|&r| lengths[r]).max().unwrap();
            assert_eq!(b.seq, padded_length(longest, 256));
            assert!(b.seq >= longest && b.seq < longest + SEQ_STEP);
        }
    }

    #[test]
    fn rows_are_sorted_by_length_and_ties_keep_input_order() {
        let lengths = [30, 5, 30, 5, 17, 5];
        let batches = plan(&lengths, limits(10_000, 100), 512);
        let order: Vec<usize> = batches.iter().flat_map(|b| b.rows.clone()).collect();
        assert_eq!(order, vec![1, 3, 5, 4, 0, 2]);
        // The 17-token row would pad the three 5-token rows (16 each) to
        // 32: past a quarter more than their own lengths, so it starts the
        // next batch, which the 30s (32) join.
        let rows: Vec<Vec<usize>> = batches.iter().map(|b| b.rows.clone()).collect();
        assert_eq!(rows, [vec![1, 3, 5], vec![4, 0, 2]]);
        assert_eq!((batches[0].seq, batches[1].seq), (16, 32));
    }

    #[test]
    fn padding_past_a_quarter_of_the_rows_own_lengths_starts_a_batch() {
        // 16 + 16 + 16 rounded, one 20 (32): 4 × 32 = 128 > 1.25 × 80.
        assert_eq!(plan(&[10, 12, 14, 20], limits(10_000, 100), 512).len(), 2);
        // Rows of one rounded length pad nothing more: one batch.
        assert_eq!(plan(&[17, 20, 30, 32], limits(10_000, 100), 512).len(), 1);
    }

    #[test]
    fn batches_are_cut_at_the_token_budget_and_the_row_limit() {
        // Padded to 16: four rows fill a budget of 64.
        let batches = plan(&[10; 9], limits(64, 100), 512);
        let sizes: Vec<usize> = batches.iter().map(|b| b.rows.len()).collect();
        assert_eq!(sizes, [4, 4, 1]);
        let batches = plan(&[10; 9], limits(10_000, 3), 512);
        let sizes: Vec<usize> = batches.iter().map(|b| b.rows.len()).collect();
        assert_eq!(sizes, [3, 3, 3]);
    }

    #[test]
    fn a_row_longer_than_the_budget_runs_alone() {
        let batches = plan(&[8, 300, 8], limits(64, 100), 512);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].rows, vec![1]);
        assert_eq!(batches[1].seq, 304);
    }

    #[test]
    fn rounding_never_passes_the_models_limit() {
        assert_eq!(padded_length(250, 256), 256);
        assert_eq!(padded_length(510, 512), 512);
        assert_eq!(padded_length(100, 100), 100);
        assert_eq!(padded_length(1, 512), SEQ_STEP);
        assert_eq!(padded_length(SEQ_STEP, 512), SEQ_STEP);
        assert_eq!(padded_length(SEQ_STEP + 1, 512), 2 * SEQ_STEP);
    }

    #[test]
    fn the_plan_is_deterministic_and_needs_no_rows() {
        let lengths: Vec<usize> = (0..200).map(|i| (i * 31) % 60 + 2).collect();
        assert_eq!(
            plan(&lengths, BatchLimits::default(), 128),
            plan(&lengths, BatchLimits::default(), 128)
        );
        assert!(plan(&[], BatchLimits::default(), 128).is_empty());
    }
}
