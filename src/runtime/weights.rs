//! tract tensors for a split model's initializers, each made once and
//! shared by every model loaded through the same [`SharedWeights`]: the
//! check's reference and candidate hold the same weights, and tract keeps
//! a model's constants for as long as the model lives.
//!
//! [`adopt_weights`] goes one step further for a compile: the IR's weights
//! themselves move into tract tensors, so that a weight is held once, not
//! once by the IR and once by tract.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use bytes::Bytes;

use tract_onnx::prelude::*;

use super::RuntimeError;
use crate::ir::{DType, Graph, NodeId, Op, Tensor as IrTensor};
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
            .map(|(i, shared)| match shared.or_else(|| adopted(&i.tensor)) {
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

/// Constants smaller than this stay where they are: moving them saves
/// nothing worth a lookup.
const MIN_ADOPTED_BYTES: usize = 64 * 1024;

/// At most this many bytes are copied before their IR buffers are freed,
/// so adopting holds at most this much twice (plus one larger tensor).
const ADOPT_SLICE_BYTES: usize = 256 << 20;

/// The tract tensors the IR's weights were moved into, by the address and
/// length of their bytes. Weak: an entry whose tensor is gone matches
/// nothing, even if its address is reused.
static ADOPTED: LazyLock<Mutex<HashMap<BufferKey, Weak<Tensor>>>> = LazyLock::new(Default::default);

/// A buffer's address and length.
type BufferKey = (usize, usize);

/// One IR buffer to adopt: a tensor holding it, a name for errors, and
/// every (graph, node) whose constant holds it.
struct Buffer {
    tensor: IrTensor,
    name: String,
    holders: Vec<(usize, NodeId)>,
}

/// The bytes of a tract tensor, as the IR holds them: the view keeps the
/// tensor alive, and a tensor shared through an `Arc` is never changed in
/// place (tract copies one before writing to it).
struct TractBytes(Arc<Tensor>);

impl AsRef<[u8]> for TractBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn key(t: &IrTensor) -> BufferKey {
    (t.raw().as_ptr() as usize, t.raw().len())
}

/// The tract tensor `t` is a view of, when it is one (see [`adopt_weights`]).
fn adopted(t: &IrTensor) -> Option<Arc<Tensor>> {
    let found = ADOPTED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key(t))?
        .upgrade()?;
    let dt = datum_type(t.dtype())?;
    (found.datum_type() == dt && found.shape() == t.dims()).then_some(found)
}

/// Moves the large weights of `graphs` into tract tensors: each distinct
/// buffer is copied once into tract's aligned storage, every constant that
/// held it becomes a view of that tensor, and the IR's buffer is freed as
/// soon as no graph holds it. Loading the graphs in tract afterwards takes
/// those tensors as they are ([`SharedWeights::tensors`]).
///
/// Without it a compile held every weight twice while it checked: the
/// IR's buffer, which is what gets written, and tract's copy (a 2.25 GB
/// xlm-roberta-large-sized model peaked at 5.9 GB, now 3.7 GB). Graphs that
/// share buffers (a graph and its clone before passes) must be adopted
/// together, or the clone left out keeps the old buffer alive.
pub fn adopt_weights(graphs: &mut [&mut Graph]) -> Result<(), RuntimeError> {
    use rayon::prelude::*;
    // Each distinct buffer once, with every (graph, node) holding it.
    let mut buffers: HashMap<BufferKey, Buffer> = HashMap::new();
    for (gi, g) in graphs.iter().enumerate() {
        for id in g.node_ids() {
            let node = g.node(id);
            let Op::Constant(t) = &node.op else { continue };
            let plain = datum_type(t.dtype()).is_some() && t.dtype() != DType::Bool;
            if t.raw().len() < MIN_ADOPTED_BYTES || !plain || adopted(t).is_some() {
                continue;
            }
            buffers
                .entry(key(t))
                .or_insert_with(|| Buffer {
                    tensor: t.clone(),
                    name: node.name.clone(),
                    holders: vec![],
                })
                .holders
                .push((gi, id));
        }
    }
    // Largest first (then by name, for a fixed order), so that the slices
    // below are as even as they can be.
    let mut buffers: Vec<Buffer> = buffers.into_values().collect();
    buffers.sort_by(|a, b| {
        b.tensor
            .raw()
            .len()
            .cmp(&a.tensor.raw().len())
            .then_with(|| a.name.cmp(&b.name))
    });
    while !buffers.is_empty() {
        let mut size = 0;
        let n = buffers
            .iter()
            .take_while(|b| {
                size += b.tensor.raw().len();
                size <= ADOPT_SLICE_BYTES
            })
            .count()
            .max(1);
        let slice: Vec<Buffer> = buffers.drain(..n).collect();
        let copies = slice
            .par_iter()
            .map(|b| {
                let tensor = Arc::new(to_tract(&b.name, &b.tensor)?);
                let bytes = Bytes::from_owner(TractBytes(tensor.clone()));
                Ok((tensor, bytes))
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let mut registry = ADOPTED.lock().unwrap_or_else(|e| e.into_inner());
        registry.retain(|_, w| w.strong_count() > 0);
        for (buffer, (tensor, bytes)) in slice.into_iter().zip(copies) {
            for (gi, id) in buffer.holders {
                // Each holder keeps its own type and dims: two constants
                // may hold one buffer under different shapes (an imported
                // file can point two initializers at the same bytes). The
                // byte count is the buffer's, so `from_raw` cannot refuse.
                if let Op::Constant(t) = &mut graphs[gi].node_mut(id).op {
                    if let Some(view) = IrTensor::from_raw(t.dtype(), t.dims().to_vec(), bytes.clone()) {
                        *t = view;
                    }
                }
            }
            registry.insert((bytes.as_ptr() as usize, bytes.len()), Arc::downgrade(&tensor));
        }
    }
    Ok(())
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
        DType::Bool => {
            let values: Vec<bool> = t.raw().iter().map(|&b| b != 0).collect();
            return Tensor::from_shape(t.dims(), &values).map_err(|e| load_error(name, e));
        }
        other => datum_type(other).ok_or_else(|| RuntimeError::Tract {
            stage: "load",
            message: format!("initializer `{name}` is {other}, which tract does not run"),
        })?,
    };
    // SAFETY: every dtype above is plain old data (any bit pattern is a
    // value), and tract checks the byte count against the dims.
    unsafe { Tensor::from_raw_dt(dt, t.dims(), t.raw()) }.map_err(|e| load_error(name, e))
}

/// tract's type for the IR's, where tract runs it.
fn datum_type(t: DType) -> Option<DatumType> {
    Some(match t {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::I8 => i8::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::Bool => bool::datum_type(),
        DType::BF16 => return None,
    })
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

    fn constant(g: &Graph, name: &str) -> IrTensor {
        match &g.node(g.find(name).unwrap()).op {
            Op::Constant(t) => t.clone(),
            other => panic!("{name} is {other:?}"),
        }
    }

    /// Adopting moves each large buffer into one tract tensor that every
    /// graph holding it now views, frees the old buffer, and later loads
    /// take that tensor without a copy; small constants stay as they are.
    #[test]
    fn adopted_weights_are_held_once_and_loaded_without_a_copy() {
        let big: Vec<f32> = (0..128 * 256).map(|i| i as f32 * 0.5).collect();
        let mut a = Graph::new();
        a.add_const("big", IrTensor::from_f32(vec![128, 256], &big))
            .unwrap();
        a.add_const("small", IrTensor::from_f32(vec![4], &[1.0, 2.0, 3.0, 4.0]))
            .unwrap();
        // The same bytes under another shape, as an imported file may have.
        let flat =
            IrTensor::from_raw(DType::F32, vec![128 * 256], constant(&a, "big").raw().clone()).unwrap();
        a.add_const("flat", flat).unwrap();
        let mut b = a.clone();
        let old = constant(&a, "big").raw().clone();
        let small = constant(&a, "small").raw().clone();

        adopt_weights(&mut [&mut a, &mut b]).unwrap();

        let (va, vb) = (constant(&a, "big"), constant(&b, "big"));
        assert_eq!(
            va.raw().as_ptr(),
            vb.raw().as_ptr(),
            "both graphs view one tensor"
        );
        assert_ne!(va.raw().as_ptr(), old.as_ptr());
        assert_eq!(va.raw(), &old, "same bytes");
        assert!(old.is_unique(), "no graph holds the old buffer any more");
        assert_eq!(constant(&a, "small").raw().as_ptr(), small.as_ptr());
        let flat = constant(&b, "flat");
        assert_eq!(flat.dims(), &[128 * 256], "a holder keeps its own dims");
        assert_eq!(flat.raw().as_ptr(), va.raw().as_ptr());

        // A fresh SharedWeights (nothing shared by name) still takes the
        // adopted tensor itself.
        let loaded = SharedWeights::new()
            .tensors(&[Initializer {
                name: "big".into(),
                tensor: vb.clone(),
            }])
            .unwrap()
            .remove(0);
        assert_eq!(loaded.as_bytes().as_ptr(), va.raw().as_ptr());
        assert_eq!(loaded.shape(), &[128, 256]);
        // Adopting again changes nothing.
        adopt_weights(&mut [&mut a]).unwrap();
        assert_eq!(constant(&a, "big").raw().as_ptr(), va.raw().as_ptr());
    }
}
