//! The fuzz targets' inputs on the stable toolchain, for CI: every seed of
//! `tests/fuzz/corpus/<target>/` and every crash the fuzzer found
//! (`tests/fuzz/regressions/<target>/`) goes through the same
//! `bertc::untrusted` function the target calls, then a fixed-seed round
//! of mutations of each seed (bit flips, interesting bytes, truncations,
//! spliced copies). Any result is fine; a panic is a failure naming the
//! target, the file and the mutation. (An abort — an allocation the bytes
//! did not pay for — ends the test binary, which fails it too.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("config", |b| drop(bertc::untrusted::config(b))),
    ("onnx", |b| drop(bertc::untrusted::onnx_model(b))),
    ("checkpoint", |b| drop(bertc::untrusted::checkpoint(b))),
    ("pickle", |b| drop(bertc::untrusted::pickle(b))),
];

/// Mutations per seed file: enough to walk past the first bytes of every
/// format, few enough to keep the test to seconds.
const MUTATIONS: usize = 150;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// The files of `dir` (sorted), skipping dotfiles (`.keep`).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

fn run(target: &str, f: Target, bytes: &[u8], what: &dyn Fn() -> String) {
    if catch_unwind(AssertUnwindSafe(|| f(bytes))).is_err() {
        panic!("target `{target}` panicked on {}", what());
    }
}

/// One mutation of `seed`, drawn from `rng`.
fn mutate(seed: &[u8], rng: &mut Xoshiro256PlusPlus) -> (Vec<u8>, String) {
    let mut b = seed.to_vec();
    if b.is_empty() {
        return (vec![rng.next_u64() as u8], "one random byte".into());
    }
    let at = (rng.next_u64() % b.len() as u64) as usize;
    match rng.next_u64() % 5 {
        0 => {
            let bit = rng.next_u64() % 8;
            b[at] ^= 1 << bit;
            (b, format!("bit {bit} of byte {at} flipped"))
        }
        1 => {
            const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'-', b'9', b'{'];
            let v = INTERESTING[(rng.next_u64() % 8) as usize];
            b[at] = v;
            (b, format!("byte {at} set to {v:#04x}"))
        }
        2 => {
            b.truncate(at);
            (b, format!("truncated to {at} bytes"))
        }
        3 => {
            // An 8-byte little-endian length or offset set to a huge value.
            let v = [u64::MAX, 1 << 62, u32::MAX as u64, 0][(rng.next_u64() % 4) as usize];
            let end = (at + 8).min(b.len());
            b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
            (b, format!("bytes {at}..{end} set to {v:#x}"))
        }
        _ => {
            let from = (rng.next_u64() % b.len() as u64) as usize;
            let len = ((rng.next_u64() % 64) as usize).min(b.len() - from);
            let chunk = b[from..from + len].to_vec();
            b.splice(at..at, chunk);
            (b, format!("{len} bytes from {from} inserted at {at}"))
        }
    }
}

#[test]
fn corpus_and_regressions_replay_without_panics() {
    for (name, f) in TARGETS {
        for sub in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(sub).join(name)) {
                let bytes = std::fs::read(&path).unwrap();
                run(name, f, &bytes, &|| path.display().to_string());
            }
        }
    }
    // Foreign exports are too large to fuzz quickly; replayed as they are.
    let foreign = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foreign-tiny-base");
    for path in files(&foreign) {
        let bytes = std::fs::read(&path).unwrap();
        run("onnx", TARGETS[1].1, &bytes, &|| path.display().to_string());
    }
}

#[test]
fn fixed_seed_mutations_of_the_corpus_do_not_panic() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(13);
    for (name, f) in TARGETS {
        for path in files(&fuzz_dir().join("corpus").join(name)) {
            let seed = std::fs::read(&path).unwrap();
            for _ in 0..MUTATIONS {
                let (bytes, how) = mutate(&seed, &mut rng);
                run(name, f, &bytes, &|| format!("{} with {how}", path.display()));
            }
        }
    }
}

/// On a valid model the onnx target runs the pipeline's own passes of
/// every level, target and precision form — the int8 forms included,
/// padded and packed — to the end: every fusion, lowering, precision and
/// packing pass among them ran.
#[test]
fn the_onnx_target_runs_every_level_target_and_precision_form() {
    let bytes = std::fs::read(fuzz_dir().join("corpus/onnx/micro-O0.onnx")).unwrap();
    let graph = bertc::onnx::import_bytes(&bytes).unwrap();
    let ran = bertc::untrusted::every_pipeline(&graph).unwrap();
    for pass in [
        "fold_constants",
        "fuse_attention",
        "decompose_attention",
        "fuse_embed_layer_norm",
        "lower_attention_onnxruntime",
        "to_fp16",
        "quantize_int8",
        "quantize_int8_onnxruntime",
        "quantize_int8_qdq",
        "pack_tokens",
    ] {
        assert!(ran.contains(pass), "`{pass}` never ran: {ran:?}");
    }
}
