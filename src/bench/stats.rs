//! Latency statistics of repeated runs.

use serde::Serialize;

/// Percentiles of run times, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyStats {
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
}

impl LatencyStats {
    /// Nearest-rank percentiles (p99 of 20 runs is the slowest run: with few
    /// runs the tail is what was seen, never an interpolation). `None`
    /// without samples.
    pub fn of(samples_ms: &[f64]) -> Option<LatencyStats> {
        if samples_ms.is_empty() {
            return None;
        }
        let mut s = samples_ms.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(LatencyStats {
            runs: s.len(),
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            mean_ms: s.iter().sum::<f64>() / s.len() as f64,
            min_ms: s[0],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = LatencyStats::of(&samples).unwrap();
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.min_ms), (5.0, 9.0, 10.0, 1.0));
        assert_eq!(s.mean_ms, 5.5);
        assert_eq!(LatencyStats::of(&[3.0]).unwrap().p99_ms, 3.0);
        assert!(LatencyStats::of(&[]).is_none());
    }
}
