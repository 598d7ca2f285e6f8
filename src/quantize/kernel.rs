//! Which int8 matrix kernel tract will run on this CPU, and whether int8 can
//! beat f32 with it: honest per CPU.
//!
//! Whether bertc's int8 model is faster than its fp32 one in tract is a
//! fact of the CPU, not of the graph: tract 0.23.9 picks its int8 kernel
//! from a ladder of instruction-set tiers (`tract-linalg`'s `mmm_tiers`,
//! highest first — AMX int8, AVX-512 VNNI, AVX-VNNI, AVX2, AVX), and only
//! the dot-product kernels out-run f32 FMA. The AVX2 kernel widens bytes to
//! 16/32 bits and multiplies with `vpmullw`/`vpmulld` (sonos/tract#413):
//! measured 3.6x *slower* than f32 on BERT-base; with AVX-512 VNNI
//! (`vpdpbusd`) the integer products ran 2.3-3.15x faster than f32's.
//!
//! [`tract_int8_kernel`] asks tract itself (its dispatch, for a BERT-shaped
//! product), so it is exact on the host; [`kernel_for_features`] mirrors the
//! tier conditions as a pure function, and [`verdict`] decides from the
//! kernel alone — both testable without depending on the host.

use std::fmt;

/// The families of int8 matrix kernels tract 0.23.9 has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// x86 AMX (`tdpbssd`), `avx512amx_mmm_i32_*`.
    AmxInt8,
    /// x86 AVX-512 VNNI (`vpdpbusd`), `avx512vnni_mmm_i32_*`.
    Avx512Vnni,
    /// x86 AVX-VNNI (VEX `vpdpbusd`, no AVX-512), `avxvnni_mmm_i32_8x8`.
    AvxVnni,
    /// x86 AVX2: bytes widened, 16/32-bit multiplies, `avx2_mmm_i32_8x8`.
    Avx2,
    /// x86 AVX without AVX2, `avx_mmm_i32_8x4`.
    Avx,
    /// arm64 with the dot-product extension (`sdot`), `*_i32_*_dot`.
    ArmDot,
    /// arm64 NEON without dot products (`smlal`).
    ArmNeon,
    /// Portable Rust, or a kernel this table does not know.
    Generic,
}

impl Int8Kernel {
    /// The family of a tract kernel, from tract's kernel names.
    pub fn from_tract_name(name: &str) -> Int8Kernel {
        let n = name.to_ascii_lowercase();
        if n.starts_with("avx512amx") {
            Int8Kernel::AmxInt8
        } else if n.starts_with("avx512vnni") {
            Int8Kernel::Avx512Vnni
        } else if n.starts_with("avxvnni") {
            Int8Kernel::AvxVnni
        } else if n.starts_with("avx2") {
            Int8Kernel::Avx2
        } else if n.starts_with("avx_") {
            Int8Kernel::Avx
        } else if n.starts_with("arm64") && n.contains("dot") {
            Int8Kernel::ArmDot
        } else if n.starts_with("arm64") {
            Int8Kernel::ArmNeon
        } else {
            Int8Kernel::Generic
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Int8Kernel::AmxInt8 => "AMX int8",
            Int8Kernel::Avx512Vnni => "AVX-512 VNNI",
            Int8Kernel::AvxVnni => "AVX-VNNI",
            Int8Kernel::Avx2 => "AVX2 (no VNNI)",
            Int8Kernel::Avx => "AVX (no AVX2)",
            Int8Kernel::ArmDot => "arm64 dot product",
            Int8Kernel::ArmNeon => "arm64 NEON (no dot product)",
            Int8Kernel::Generic => "generic",
        }
    }
}

impl fmt::Display for Int8Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The x86 instruction-set extensions tract's int8 tiers read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct X86Features {
    pub avx: bool,
    pub avx2: bool,
    pub fma: bool,
    pub avx512f: bool,
    pub avx512vnni: bool,
    pub avxvnni: bool,
    /// CPUID amx-int8 *and* the OS granting the tile state (Linux arch_prctl).
    pub amx_int8: bool,
}

/// The int8 kernel family tract 0.23.9 picks on an x86 CPU with these
/// features, for a matrix product (n > 1): the `applies` conditions of its
/// tiers in `tract-linalg/src/x86_64/mmm.rs`, highest precedence first.
pub fn kernel_for_features(f: &X86Features) -> Int8Kernel {
    let avx512 = f.avx2 && f.fma && f.avx512f;
    if avx512 && f.avx512vnni && f.amx_int8 {
        Int8Kernel::AmxInt8
    } else if avx512 && f.avx512vnni {
        Int8Kernel::Avx512Vnni
    } else if f.avx2 && f.avxvnni {
        Int8Kernel::AvxVnni
    } else if f.avx2 {
        Int8Kernel::Avx2
    } else if f.avx {
        Int8Kernel::Avx
    } else {
        Int8Kernel::Generic
    }
}

/// How int8 compares with f32 in tract with a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Verdict {
    /// Dot-product instructions: int8 products beat f32 FMA.
    Faster,
    /// Widening multiplies or portable code: int8 is slower than f32.
    Slower,
    /// No measurement either way.
    Unknown,
}

/// The verdict for a kernel family (pure: no host involved).
pub fn verdict(kernel: Int8Kernel) -> Int8Verdict {
    match kernel {
        // Measured: BERT-base int8 products 2.3-3.15x faster than f32 (Zen 5).
        Int8Kernel::Avx512Vnni => Int8Verdict::Faster,
        // Same vpdpbusd (VEX) / 16x more MACs per tdpbssd: not measured, expected faster.
        Int8Kernel::AvxVnni | Int8Kernel::AmxInt8 | Int8Kernel::ArmDot => Int8Verdict::Faster,
        // Measured on AVX2: 3.6x slower than f32 (bytes widened, vpmulld).
        Int8Kernel::Avx2 | Int8Kernel::Avx | Int8Kernel::Generic => Int8Verdict::Slower,
        Int8Kernel::ArmNeon => Int8Verdict::Unknown,
    }
}

/// Whether bertc's int8 model runs slower than fp32 in tract with this kernel.
pub fn int8_slower_than_fp32(kernel: Int8Kernel) -> bool {
    verdict(kernel) == Int8Verdict::Slower
}

/// The int8 kernel tract picked on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TractInt8Kernel {
    /// tract's own name, e.g. `avx512vnni_mmm_i32_8x8`.
    pub name: String,
    pub kernel: Int8Kernel,
}

/// The kernel tract runs for an int8 product of BERT's shape (128 tokens ×
/// 768 × 768) on this CPU, read off the plan tract's optimizer makes for
/// such a product in this process. Which VNNI tile runs is decided per
/// process by a timing probe (`avx512_fma_units` in tract-linalg, 8×8 on a
/// single 512-bit FMA port, 16×16 on two; `TRACT_AVX512_FMA_UNITS` forces
/// it), and on a busy VM that probe can answer either way from one run to
/// the next: asking the optimizer itself names the one this process runs.
pub fn tract_int8_kernel() -> TractInt8Kernel {
    let name = planned_int8_kernel(128, 768, 768)
        .ok()
        .flatten()
        // No optimized product in the plan: tract's generic code runs it.
        .unwrap_or_else(|| "generic".to_string());
    TractInt8Kernel {
        kernel: Int8Kernel::from_tract_name(&name),
        name,
    }
}

/// Plans `i8[m, k] × i8[k, n] → i32` in tract and returns the name of the
/// kernel in the plan's product, if there is one.
fn planned_int8_kernel(m: usize, k: usize, n: usize) -> tract_onnx::prelude::TractResult<Option<String>> {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::matmul::optimized::OptMatMul;
    let mut model = TypedModel::default();
    let a = model.add_source("activations", i8::fact([m, k]))?;
    let b = model.add_const("weights", Tensor::from_shape(&[k, n], &vec![1i8; k * n])?)?;
    let axes: tract_onnx::tract_core::axes::AxesMapping = "mk,kn->mn".parse()?;
    let c = model.wire_node("product", EinSum::new(axes, i32::datum_type()), &[a, b])?;
    model.select_output_outlets(&c)?;
    let plan = model.into_optimized()?;
    Ok(plan.nodes().iter().find_map(|node| {
        let op = node.op_as::<OptMatMul>()?;
        let mode = op.mode_picker.pick(n).ok()?;
        op.mmm.get(mode).map(|k| k.name().to_string())
    }))
}

/// The host's x86 features as tract's tiers see them (its own probe,
/// including the AMX permission check); `None` off x86-64.
pub fn host_x86_features() -> Option<X86Features> {
    use tract_linalg::isa::{Arch, Isa};
    let isa = tract_linalg::isa::native();
    if isa.arch() != Some(Arch::X86_64) {
        return None;
    }
    let has = |i: Isa| isa.iter().any(|x| x == i);
    Some(X86Features {
        avx: has(Isa::X86_64Avx),
        avx2: has(Isa::X86_64Avx2),
        fma: has(Isa::X86_64Fma),
        avx512f: has(Isa::X86_64Avx512f),
        avx512vnni: has(Isa::X86_64Avx512Vnni),
        avxvnni: has(Isa::X86_64AvxVnni),
        amx_int8: has(Isa::X86_64AmxInt8),
    })
}

/// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// The warning to print when int8 is slower than fp32 with this kernel.
pub fn int8_warning(kernel: &TractInt8Kernel) -> Option<String> {
    int8_slower_than_fp32(kernel.kernel).then(|| {
        format!(
            "warning: on this CPU tract's int8 kernel is {} ({}): it has no int8 dot-product \
             instructions (VNNI/AMX), so the int8 model runs slower than fp32 in tract \
             (BERT-base measured 3.6x slower on AVX2); it is still 4x smaller",
            kernel.name, kernel.kernel
        )
    })
}

/// What `compile --quantize` and `bench` print about int8 on this CPU: an
/// information line (CPU, tract's kernel, the verdict) and, where int8 is
/// slower than fp32, the warning.
pub fn notice() -> (String, Option<String>) {
    let k = tract_int8_kernel();
    let verdict = match verdict(k.kernel) {
        Int8Verdict::Faster => "int8 products faster than fp32 here",
        Int8Verdict::Slower => "int8 products SLOWER than fp32 here",
        Int8Verdict::Unknown => "int8 vs fp32 not measured for this kernel",
    };
    let line = format!(
        "CPU {}: tract int8 kernel {} ({}), {verdict}",
        cpu_model(),
        k.name,
        k.kernel
    );
    (line, int8_warning(&k))
}

/// What `compile --precision fp16` says: tract does not fold a Cast that
/// grows a constant, so it converts (and repacks) every f16 weight matrix
/// on every run; onnxruntime and OpenVINO fold the casts at load.
pub const FP16_NOTE: &str = "note: fp16 stores the weights as f16 and computes in f32: onnxruntime and \
     OpenVINO convert them once at load and run it as fast as fp32, tract converts them on every run \
     (BERT-base: 1.5x the fp32 time); it halves the file, it is not faster";

/// Where an int8 form runs well: the note `compile` prints.
/// - The portable / tract form (i8 × i8 MatMulInteger, per-token scales)
///   falls on onnxruntime's slow integer path and is not OpenVINO's int8
///   either; `static_quant` says whether `--quantize static` was asked for
///   (OpenVINO and onnxruntime then get their own Q/DQ form).
/// - onnxruntime's u8 × s8 forms with 8-bit weights: its x86 kernel without
///   VNNI sums pairs of products in 16 bits and saturates (emulated on
///   MiniLM: worst golden row 0.9978 → 0.9923); `--weight-bits 7` cannot
///   (0.9952 everywhere). `host_saturates`: this CPU is such a one.
pub fn int8_form_note(
    target: crate::passes::Target,
    static_quant: bool,
    weight_bits: u8,
    host_saturates: bool,
) -> Option<String> {
    use crate::passes::Target;
    if target == Target::Onnxruntime {
        let here = match host_saturates {
            true => "this CPU is one of them",
            false => "not this CPU",
        };
        return (weight_bits == 8).then(|| {
            format!(
                "note: 8-bit weights: onnxruntime's u8 x s8 kernel on x86 CPUs without VNNI (AVX2, \
                 AVX-512 without VNNI) adds pairs of products in 16 bits and can saturate ({here}); \
                 for such servers compile with --weight-bits 7"
            )
        });
    }
    let portable_form = match target {
        Target::Openvino => !static_quant,
        _ => true,
    };
    portable_form.then(|| {
        "note: this int8 form (i8 x i8 MatMulInteger) is tract's; onnxruntime runs it slower than \
         fp32 (BERT-base 3.6x on AVX-512 VNNI, 1.8x on AVX2) and OpenVINO about as fast as fp32 \
         (1.1x slower): for them compile with --target onnxruntime --quantize dynamic or \
         --target openvino --quantize static"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86(f: impl FnOnce(&mut X86Features)) -> X86Features {
        let mut x = X86Features::default();
        f(&mut x);
        x
    }

    #[test]
    fn tiers_follow_tract_precedence() {
        let avx2 = x86(|f| {
            f.avx = true;
            f.avx2 = true;
            f.fma = true
        });
        assert_eq!(kernel_for_features(&avx2), Int8Kernel::Avx2);
        let zen4 = X86Features {
            avx512f: true,
            avx512vnni: true,
            ..avx2
        };
        assert_eq!(kernel_for_features(&zen4), Int8Kernel::Avx512Vnni);
        let spr = X86Features {
            amx_int8: true,
            avxvnni: true,
            ..zen4
        };
        assert_eq!(kernel_for_features(&spr), Int8Kernel::AmxInt8);
        // AMX in CPUID but without AVX-512 VNNI: not the AMX tier.
        let odd = X86Features {
            avx512vnni: false,
            ..spr
        };
        assert_eq!(kernel_for_features(&odd), Int8Kernel::AvxVnni);
        let alder = X86Features {
            avxvnni: true,
            ..avx2
        };
        assert_eq!(kernel_for_features(&alder), Int8Kernel::AvxVnni);
        // AVX-512 VNNI without FMA/AVX2 flags: tract's tier does not apply.
        let partial = x86(|f| {
            f.avx512f = true;
            f.avx512vnni = true;
            f.avx = true
        });
        assert_eq!(kernel_for_features(&partial), Int8Kernel::Avx);
        assert_eq!(kernel_for_features(&X86Features::default()), Int8Kernel::Generic);
    }

    #[test]
    fn names_map_to_families() {
        for (name, kernel) in [
            ("avx512amx_mmm_i32_16x16", Int8Kernel::AmxInt8),
            ("avx512vnni_mmm_i32_8x8", Int8Kernel::Avx512Vnni),
            ("avx512vnni_mmm_i32_16x16", Int8Kernel::Avx512Vnni),
            ("avxvnni_mmm_i32_8x8", Int8Kernel::AvxVnni),
            ("avx2_mmm_i32_8x8", Int8Kernel::Avx2),
            ("avx_mmm_i32_8x4", Int8Kernel::Avx),
            ("arm64simd_mmm_i32_8x8_dot", Int8Kernel::ArmDot),
            ("arm64simd_mmm_i32_8x8", Int8Kernel::ArmNeon),
            ("generic_i32_4x4", Int8Kernel::Generic),
        ] {
            assert_eq!(Int8Kernel::from_tract_name(name), kernel, "{name}");
        }
    }

    /// The warning is decided by the kernel, never the host.
    #[test]
    fn warns_without_dot_products_only() {
        for k in [Int8Kernel::Avx2, Int8Kernel::Avx, Int8Kernel::Generic] {
            assert!(int8_slower_than_fp32(k), "{k}");
            let w = int8_warning(&TractInt8Kernel {
                name: "x".into(),
                kernel: k,
            });
            assert!(w.unwrap().contains("slower than fp32"));
        }
        for k in [
            Int8Kernel::AmxInt8,
            Int8Kernel::Avx512Vnni,
            Int8Kernel::AvxVnni,
            Int8Kernel::ArmDot,
            Int8Kernel::ArmNeon,
        ] {
            assert!(!int8_slower_than_fp32(k), "{k}");
            assert_eq!(
                int8_warning(&TractInt8Kernel {
                    name: "x".into(),
                    kernel: k
                }),
                None
            );
        }
    }

    /// On whatever host runs the tests: the pure mirror of tract's tiers
    /// names the family tract's own dispatch picks.
    #[test]
    fn mirror_agrees_with_tract_on_this_host() {
        let tract = tract_int8_kernel();
        if let Some(features) = host_x86_features() {
            assert_eq!(
                kernel_for_features(&features),
                tract.kernel,
                "{features:?} {tract:?}"
            );
        }
    }

    #[test]
    fn the_form_notes_follow_form_and_weight_bits() {
        use crate::passes::Target;
        // onnxruntime's forms: a saturation note with 8-bit weights, which
        // says whether this CPU is one where it happens.
        for static_quant in [false, true] {
            let vnni = int8_form_note(Target::Onnxruntime, static_quant, 8, false).unwrap();
            assert!(
                vnni.contains("--weight-bits 7") && vnni.contains("not this CPU"),
                "{vnni}"
            );
            let avx2 = int8_form_note(Target::Onnxruntime, static_quant, 8, true).unwrap();
            assert!(avx2.contains("this CPU is one of them"), "{avx2}");
            assert_eq!(int8_form_note(Target::Onnxruntime, static_quant, 7, true), None);
        }
    }

    #[test]
    fn the_form_note_goes_with_the_portable_int8_form_only() {
        use crate::passes::Target;
        for (target, static_quant, noted) in [
            (Target::Portable, false, true),
            (Target::Portable, true, true),
            (Target::Tract, false, true),
            (Target::Tract, true, true),
            // `--target openvino --quantize dynamic` is refused before this
            // (OpenVINO's int8 is static); were it not, it would be the
            // portable form.
            (Target::Openvino, false, true),
            (Target::Openvino, true, false),
            // 7-bit weights: no saturation note either.
            (Target::Onnxruntime, false, false),
            (Target::Onnxruntime, true, false),
        ] {
            let note = int8_form_note(target, static_quant, 7, false);
            assert_eq!(note.is_some(), noted, "{target:?} static {static_quant}");
            if let Some(n) = note {
                assert!(n.contains("--target onnxruntime --quantize dynamic"), "{n}");
            }
        }
    }
}
