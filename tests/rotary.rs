//! Rotary position embeddings as the builder writes them (builder/rotary.rs),
//! against a plain-Rust rotation of each vector: both pairings, the whole
//! head and a partial width, at sequence lengths the graph only learns at
//! run time; in tract and in onnxruntime (which also runs the ONNX checker).

mod common;

use bertc::builder::{build_rotation, inverse_frequencies, rotate_reference, Rotary, RotaryPairs};
use bertc::onnx::{export_bytes, ExportOptions};
use bertc::runtime::{HostTensor, NamedTensors, TractSession};
use common::run_onnxruntime;

/// Inputs in [-2, 2], from a fixed linear congruential sequence.
fn inputs(n: usize) -> Vec<f32> {
    let mut state = 12345u64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// The reference: every (batch, position, head) vector rotated by its position.
fn expected(x: &[f32], dims: [usize; 4], r: Rotary) -> Vec<f32> {
    let [b, s, h, d] = dims;
    let mut y = x.to_vec();
    for row in 0..b * s * h {
        let position = (row / h) % s;
        let v = &x[row * d..(row + 1) * d];
        let rotated = rotate_reference(&v[..r.dim], position, r);
        y[row * d..row * d + r.dim].copy_from_slice(&rotated);
    }
    y
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn rotation_matches_the_reference_for_every_pairing_and_width() {
    let (heads, head) = (2, 8);
    for pairs in [RotaryPairs::HalfSplit, RotaryPairs::Interleaved] {
        for (dim, theta) in [(8, 10_000.0), (4, 1_000.0), (8, 160_000.0)] {
            let r = Rotary { theta, dim, pairs };
            let g = build_rotation(r, heads, head).unwrap();
            let bytes = export_bytes(&g, ExportOptions::default()).unwrap();
            for seq in [1, 7, 33] {
                let dims = [2, seq, heads, head];
                let x = inputs(dims.iter().product());
                let feed: NamedTensors =
                    [("x".to_string(), HostTensor::f32(dims.to_vec(), x.clone()))].into();
                let want = expected(&x, dims, r);
                let mut tract = TractSession::from_bytes(&bertc::Session::single_threaded(), &bytes).unwrap();
                let got = tract.run(&feed).unwrap()["y"].to_f32();
                // Angles up to 32 rad: f32 cos/sin of them differ by a few ulps.
                let what = format!("{pairs:?} dim {dim} θ {theta} S {seq}");
                assert!(
                    max_abs(&got, &want) <= 1e-5,
                    "{what}: tract {}",
                    max_abs(&got, &want)
                );
                let ort = run_onnxruntime(&bytes, &feed)["y"].to_f32();
                assert!(
                    max_abs(&ort, &want) <= 1e-5,
                    "{what}: onnxruntime {}",
                    max_abs(&ort, &want)
                );
            }
        }
    }
}

/// Position 0 is the identity, and a rotation keeps each pair's length: a
/// wrong pairing or sign would not.
#[test]
fn the_reference_rotates_pairs_as_transformers_does() {
    let x: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
    for pairs in [RotaryPairs::HalfSplit, RotaryPairs::Interleaved] {
        let r = Rotary {
            theta: 10_000.0,
            dim: 8,
            pairs,
        };
        assert_eq!(rotate_reference(&x, 0, r), x);
        let y = rotate_reference(&x, 5, r);
        let pair = |v: &[f32], i: usize| match pairs {
            RotaryPairs::HalfSplit => (v[i], v[i + 4]),
            RotaryPairs::Interleaved => (v[2 * i], v[2 * i + 1]),
        };
        for i in 0..4 {
            let ((a, b), (c, d)) = (pair(&x, i), pair(&y, i));
            assert!(
                ((a * a + b * b) - (c * c + d * d)).abs() < 1e-4,
                "{pairs:?} pair {i}"
            );
        }
    }
    // transformers' inv_freq for dim 8, θ 10000: 1, 0.1, 0.01, 0.001.
    let inv = inverse_frequencies(10_000.0, 8);
    for (got, want) in inv.iter().zip([1.0, 0.1, 0.01, 0.001]) {
        assert!((got - want).abs() <= want * 1e-6, "{inv:?}");
    }
}

/// onnxruntime's lowering (lower_rotary_onnxruntime) writes each half-split
/// rotation of whole heads as one RotaryEmbedding kernel, exact against the
/// reference at lengths known only at run time, batch > 1 included (the
/// kernel checks its caches' batch dim), a partial width too (its rotated
/// slice as heads of that width); the interleaved pairing is left as it is.
#[test]
fn onnxruntime_lowering_writes_one_rotary_kernel_per_rotation() {
    use bertc::ir::verify;
    use bertc::passes::PassManager;
    let (heads, head) = (2, 8);
    for (pairs, dim, lowered) in [
        (RotaryPairs::HalfSplit, 8, 1),
        // The rotated part of each head, as heads of its own width.
        (RotaryPairs::HalfSplit, 4, 1),
        (RotaryPairs::Interleaved, 8, 0),
    ] {
        let r = Rotary {
            theta: 10_000.0,
            dim,
            pairs,
        };
        let mut g = build_rotation(r, heads, head).unwrap();
        let runs = PassManager::from_names(["lower_rotary_onnxruntime", "dead_node_elimination"])
            .unwrap()
            .verify_each(true)
            .run(&mut g)
            .unwrap();
        verify(&g).unwrap();
        assert_eq!(runs[0].report.matches, lowered, "{pairs:?} dim {dim}");
        let h = g.op_histogram();
        assert_eq!(h.get("RotaryEmbedding").copied().unwrap_or(0), lowered, "{h:?}");
        if lowered == 1 {
            // The products, sums and halves are gone: one Mul left, the
            // angles' positions · inv_freq.
            let none = |op: &str| !h.contains_key(op);
            assert!(none("Sub") && none("Add") && h.get("Mul") == Some(&1), "{h:?}");
        }
        let bytes = export_bytes(&g, ExportOptions::default()).unwrap();
        for (batch, seq) in [(1, 1), (2, 7), (3, 33)] {
            let dims = [batch, seq, heads, head];
            let x = inputs(dims.iter().product());
            let feed: NamedTensors = [("x".to_string(), HostTensor::f32(dims.to_vec(), x.clone()))].into();
            let want = expected(&x, dims, r);
            let ort = run_onnxruntime(&bytes, &feed)["y"].to_f32();
            let err = max_abs(&ort, &want);
            assert!(
                err <= 1e-5,
                "{pairs:?} dim {dim} B {batch} S {seq}: onnxruntime {err}"
            );
        }
    }
}
