//! `GET /metrics`: Prometheus' text format — requests and latencies per
//! route and status, queue depth, batch sizes and tokens, inference time.
//! Counters are atomics or short mutexes: a request pays a few
//! nanoseconds to be counted, never a wait behind inference.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets in seconds, 1 ms to 10 s.
const SECONDS: [f64; 14] = [
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    f64::INFINITY,
];
/// Batch-size buckets, in inputs.
const INPUTS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, f64::INFINITY];

/// A cumulative histogram over fixed buckets.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i] += 1;
        }
        self.sum += value;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let le = match bound.is_infinite() {
                true => "+Inf".to_string(),
                false => bound.to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}");
        }
        let braces = match labels.is_empty() {
            true => String::new(),
            false => format!("{{{labels}}}"),
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    /// (route, status) → count and latency.
    requests: Mutex<BTreeMap<(&'static str, u16), Histogram>>,
    /// Requests being answered now (parsed, not yet answered).
    pub in_flight: AtomicUsize,
    /// Requests sent to the worker and not yet taken by it.
    pub queued: AtomicUsize,
    batches: Mutex<(Histogram, Histogram)>,
    inputs: AtomicU64,
    tokens: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            batches: Mutex::new((Histogram::new(&INPUTS), Histogram::new(&SECONDS))),
            inputs: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// A request on `route` answered with `status` after `took`.
    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let mut all = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        all.entry((route, status))
            .or_insert_with(|| Histogram::new(&SECONDS))
            .observe(took.as_secs_f64());
    }

    /// One run of the worker: `inputs` of `tokens` tokens in `took`.
    pub fn run(&self, inputs: usize, tokens: usize, took: Duration) {
        let mut b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        b.0.observe(inputs as f64);
        b.1.observe(took.as_secs_f64());
        self.inputs.fetch_add(inputs as u64, Ordering::Relaxed);
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
    }

    /// How many requests on `route` were answered with `status`.
    #[cfg(test)]
    fn count(&self, route: &str, status: u16) -> u64 {
        let all = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|((r, s), _)| *r == route && *s == status)
            .map(|(_, h)| h.counts.iter().sum::<u64>())
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP bertc_request_duration_seconds Requests by route and status, and their latency.\n",
        );
        out.push_str("# TYPE bertc_request_duration_seconds histogram\n");
        for ((route, status), h) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            h.write(&mut out, "bertc_request_duration_seconds", &labels);
        }
        let gauges = [
            (
                "bertc_requests_in_flight",
                "Requests being answered now.",
                self.in_flight.load(Ordering::Relaxed) as u64,
            ),
            (
                "bertc_queue_depth",
                "Requests waiting for the inference worker.",
                self.queued.load(Ordering::Relaxed) as u64,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        let counters = [
            ("bertc_inputs_total", "Inputs run by the model.", &self.inputs),
            (
                "bertc_tokens_total",
                "Tokens of the inputs run (special tokens included).",
                &self.tokens,
            ),
        ];
        for (name, help, value) in counters {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        }
        let b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP bertc_batch_inputs Inputs per run of the worker.\n# TYPE bertc_batch_inputs histogram\n",
        );
        b.0.write(&mut out, "bertc_batch_inputs", "");
        out.push_str("# HELP bertc_inference_seconds Time of each run of the worker.\n# TYPE bertc_inference_seconds histogram\n");
        b.1.write(&mut out, "bertc_inference_seconds", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_counts_per_route_and_status() {
        let m = Metrics::default();
        m.request("/embed", 200, Duration::from_millis(3));
        m.request("/embed", 200, Duration::from_millis(30));
        m.request("/embed", 429, Duration::from_micros(10));
        m.run(5, 40, Duration::from_millis(2));
        assert_eq!(m.count("/embed", 200), 2);
        assert_eq!(m.count("/embed", 429), 1);
        let text = m.render();
        assert!(
            text.contains(
                "bertc_request_duration_seconds_bucket{route=\"/embed\",status=\"200\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "bertc_request_duration_seconds_bucket{route=\"/embed\",status=\"200\",le=\"0.05\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("bertc_request_duration_seconds_count{route=\"/embed\",status=\"429\"} 1"),
            "{text}"
        );
        assert!(text.contains("bertc_tokens_total 40"), "{text}");
        assert!(text.contains("bertc_batch_inputs_bucket{le=\"8\"} 1"), "{text}");
        assert!(text.contains("bertc_batch_inputs_bucket{le=\"4\"} 0"), "{text}");
    }
}
