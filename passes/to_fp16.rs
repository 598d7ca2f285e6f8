//! `to_fp16`: weights stored as f16, computed in f32.
//!
//! Every f32 constant of rank ≥ 1 (weights, biases, layer-norm parameters,
//! embedding tables) becomes an f16 constant followed by `Cast<f32>`; scalar
//! constants (epsilons, 1/√2, mask fill values) stay f32, as f16 would round
//! some of them (1e-12 underflows to 0). The file halves; the arithmetic
//! stays f32.
//!
//! Embedding tables are looked up in f16 and only the rows gathered are
//! cast ([`gather_before_cast`]).
//!
//! Why not compute in f16: this CPU has no AVX512-FP16, and tract 0.23.9 has
//! no x86 f16 matrix kernels (its f16 kernels are aarch64 `fp16` ones), and
//! f16 activations would go through a generic (slower) path and lose
//! accuracy in the layer norms' sums. onnxruntime's CPU provider likewise
//! runs f16 MatMul only through slow fallbacks. The cost in tract: it does
//! not fold a `Cast<f32>` that grows a constant, so it converts (and
//! repacks) every weight matrix on every run — BERT-base fp16 runs ~1.6×
//! the f32 time there. onnxruntime and OpenVINO fold the casts at load
//! and run it as fast as f32. fp16 is for file size.

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
            report.nodes_added += gather_before_cast(g, hv, c)?;
        }
        Ok(report)
    }
}

/// Each `Gather(Cast<f32>(table), ids)` reading the cast `c` of the f16
/// constant `h` becomes `Cast<f32>(Gather(h, ids))`: only the rows looked
/// up are converted. tract does not fold a Cast that grows a constant, so
/// it would convert BERT-base's whole 30522 × 768 word table on every run
/// (63.5 ms of a 327 ms fp16 run at S=128). Returns the nodes added.
fn gather_before_cast(g: &mut Graph, h: Value, c: Value) -> Result<usize, IrError> {
    let mut added = 0;
    for (id, slot) in g.consumers(c) {
        let Op::Gather { axis } = g.node(id).op else {
            continue;
        };
        let Some(Some(ids)) = g.inputs_of(id).get(1).copied() else {
            continue;
        };
        if slot != 0 {
            continue;
        }
        let base = g.node(id).name.clone();
        let n = g.fresh_name(&format!("{base}.f16"));
        let rows = g.add(&n, Op::Gather { axis }, &[h, ids])?;
        let n = g.fresh_name(&format!("{base}.to_f32"));
        let rows_f32 = g.add(&n, Op::Cast { to: DType::F32 }, &[rows])?;
        g.replace_uses(Value { node: id, slot: 0 }, rows_f32);
        added += 2;
    }
    Ok(added)
}
