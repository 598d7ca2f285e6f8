//! `to_fp16`: weights stored as f16, computed in f32.
//!
//! Every f32 constant of rank ≥ 1 (weights, biases, layer-norm parameters,
//! embedding tables) becomes an f16 constant followed by `Cast<f32>`; scalar
//! constants (epsilons, 1/√2, mask fill values) stay f32, as f16 would round
//! some of them (1e-12 underflows to 0). The file halves; the arithmetic
//! stays f32.
//!
//! Why not compute in f16: this CPU has no AVX512-FP16, and tract 0.23.9 has
//! no x86 f16 matrix kernels (its f16 kernels are aarch64 `fp16` ones); on
//! x86 it folds the `Cast<f32>` of a constant at load time and runs the
//! f32 kernels, so this form runs exactly as fast as the f32 model, while
//! f16 activations would go through a generic (slower) path and lose
//! accuracy in the layer norms' sums. onnxruntime's CPU provider likewise
//! runs f16 MatMul only through slow fallbacks.

use crate::ir::{DType, Graph, IrError, Op, Tensor, Value};

use super::{Pass, PassReport};

pub struct ToFp16;

impl Pass for ToFp16 {
    fn name(&self) -> &'static str {
        "to_fp16"
    }

    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let mut report = PassReport::default();
        let weights: Vec<_> = crate::ir::canonical_order(g)
            .into_iter()
            .filter(|&id| match &g.node(id).op {
                Op::Constant(t) => t.dtype() == DType::F32 && !t.dims().is_empty(),
                _ => false,
            })
            .collect();
        for id in weights {
            let v = Value { node: id, slot: 0 };
            if g.consumers(v).is_empty() && !g.is_output(v) {
                continue;
            }
            let Op::Constant(t) = &g.node(id).op else {
                unreachable!()
            };
            let halves: Vec<u8> = t
                .to_f32_vec()
                .expect("f32")
                .iter()
                .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                .collect();
            let h = Tensor::from_raw(DType::F16, t.dims().to_vec(), halves.into()).expect("sizes match");
            let base = g.node(id).name.clone();
            let hn = g.fresh_name(&format!("{base}.f16"));
            let hv = g.add_const(&hn, h)?;
            let cn = g.fresh_name(&format!("{base}.to_f32"));
            let c = g.add(&cn, Op::Cast { to: DType::F32 }, &[hv])?;
            g.replace_uses(v, c);
            report.matches += 1;
            report.nodes_added += 2;
        }
        Ok(report)
    }
}
