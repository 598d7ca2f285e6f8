//! tract tensors for a split model's initializers, each made once and
//! shared by every model loaded through the same [`SharedWeights`]: the
//! check's reference and candidate hold the same weights, and tract keeps
//! a model's constants for as long as the model lives.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::RuntimeError;
use crate::ir::{DType, Tensor as IrTensor};
use crate::onnx::Initializer;

#[derive(Default)]
pub struct SharedWeights {
    by_name: HashMap<String, (IrTensor, Arc<Tensor>)>,
}

impl SharedWeights {
    pub fn new() -> SharedWeights {
        SharedWeights::default()
    }

    /// The tract tensor of every initializer, in order: the one made for an
    /// earlier initializer of the same name when its type, dims and bytes
    /// are equal (compared, not assumed: a model's bytes are shared only
    /// when they are the same), else a new one. Each is compared once; the
    /// new tensors are made in parallel (BERT-base:
    /// 438 MB of copies into fresh memory, whose page faults are most of
    /// their cost).
    pub fn tensors(&mut self, inits: &[Initializer]) -> Result<Vec<Arc<Tensor>>, RuntimeError> {
        use rayon::prelude::*;
        let shared: Vec<Option<Arc<Tensor>>> = inits
            .iter()
            .map(|i| {
                self.by_name
                    .get(&i.name)
                    .filter(|(ir, _)| same(ir, &i.tensor))
                    .map(|(_, t)| t.clone())
            })
            .collect();
        let tensors: Vec<Arc<Tensor>> = inits
            .par_iter()
            .zip(shared)
            .map(|(i, shared)| match shared {
                Some(t) => Ok(t),
                None => Ok(Arc::new(to_tract(&i.name, &i.tensor)?)),
            })
            .collect::<Result<_, RuntimeError>>()?;
        for (init, t) in inits.iter().zip(&tensors) {
            self.by_name
                .insert(init.name.clone(), (init.tensor.clone(), t.clone()));
        }
        Ok(tensors)
    }
}

/// Equal type, dims and bytes; the same buffer is not read twice (graphs
/// cloned from one another share their weights' buffers).
fn same(a: &IrTensor, b: &IrTensor) -> bool {
    let (x, y) = (a.raw(), b.raw());
    a.dtype() == b.dtype()
        && a.dims() == b.dims()
        && ((x.as_ptr() == y.as_ptr() && x.len() == y.len()) || x == y)
}

/// A tract tensor with the IR tensor's elements (one copy, into tract's
/// aligned storage).
fn to_tract(name: &str, t: &IrTensor) -> Result<Tensor, RuntimeError> {
    let dt = match t.dtype() {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::Bool => {
            let values: Vec<bool> = t.raw().iter().map(|&b| b != 0).collect();
            return Tensor::from_shape(t.dims(), &values).map_err(|e| load_error(name, e));
        }
        DType::BF16 => {
            return Err(RuntimeError::Tract {
                stage: "load",
                message: format!("initializer `{name}` is bf16, which tract does not run"),
            })
        }
    };
    // SAFETY: every dtype above is plain old data (any bit pattern is a
    // value), and tract checks the byte count against the dims.
    unsafe { Tensor::from_raw_dt(dt, t.dims(), t.raw()) }.map_err(|e| load_error(name, e))
}

fn load_error(name: &str, e: TractError) -> RuntimeError {
    RuntimeError::Tract {
        stage: "load",
        message: format!("initializer `{name}`: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(name: &str, values: &[f32]) -> Initializer {
        Initializer {
            name: name.into(),
            tensor: IrTensor::from_f32(vec![values.len()], values),
        }
    }

    /// A tensor is shared only by name and equal contents: the reference
    /// and candidate of a check share their common weights, and a weight a
    /// pass changed under the same name gets its own tensor.
    #[test]
    fn equal_initializers_share_one_tensor_and_changed_ones_do_not() {
        let mut w = SharedWeights::new();
        let mut one = |i: Initializer| w.tensors(&[i]).unwrap().remove(0);
        let a = one(init("w", &[1.0, 2.0]));
        let same = one(init("w", &[1.0, 2.0]));
        assert!(Arc::ptr_eq(&a, &same));
        let changed = one(init("w", &[1.0, 3.0]));
        assert!(!Arc::ptr_eq(&a, &changed));
        assert_eq!(
            changed.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap(),
            &[1.0, 3.0]
        );
        let other = one(init("v", &[1.0, 2.0]));
        assert!(!Arc::ptr_eq(&same, &other));
    }
}
