//! Attributes as the op table describes them: each one's ONNX name, the
//! IR field it fills, its type and default, and — for the attributes ONNX
//! moved to inputs (`axes` of ReduceMean at opset 18, of Unsqueeze and
//! Squeeze at 13) — the input that replaces it from that opset on.
//!
//! Export and dumps read an op's values ([`AttrValue`], borrowed from the
//! op); import reads an ONNX node through [`OnnxNode`], which the ONNX
//! module implements, so no protobuf type reaches the IR.

use std::fmt;

use super::super::dtype::DType;
use super::super::graph::ValueInfo;
use super::super::op::GeluApproximation;
use super::super::tensor::Tensor;

/// How an attribute is stored in ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    Int,
    /// An int that is 0 or 1.
    Flag,
    Ints,
    Float,
    /// An int holding a `TensorProto.DataType` code.
    DType,
    Tensor,
    String,
}

/// A value an attribute takes when the node does not carry it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrDefault {
    /// Required, or without one value that stands for "absent".
    None,
    Int(i64),
    Float(f32),
}

/// An attribute ONNX turned into a constant input from an opset on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsInput {
    /// The input slot it takes in the ONNX node (after the IR's own inputs).
    pub slot: usize,
    /// The first opset where it is an input.
    pub since: i64,
    /// Import takes the input when present, else the attribute, at any
    /// opset: what bertc has always read for Squeeze and Unsqueeze.
    pub import_either: bool,
}

/// One attribute of an op: its ONNX name and the IR field it maps to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttrSpec {
    /// The name in ONNX (`transA`).
    pub name: &'static str,
    /// The IR field it fills, as dumps show it (`trans_a`).
    pub field: &'static str,
    pub ty: AttrType,
    pub default: AttrDefault,
    pub input: Option<AsInput>,
}

impl AttrSpec {
    const fn new(name: &'static str, ty: AttrType) -> AttrSpec {
        AttrSpec {
            name,
            field: name,
            ty,
            default: AttrDefault::None,
            input: None,
        }
    }

    pub const fn int(name: &'static str, default: i64) -> AttrSpec {
        AttrSpec::new(name, AttrType::Int).with_default(AttrDefault::Int(default))
    }

    /// An int without a default (a count the node must give).
    pub const fn required_int(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::Int)
    }

    /// An int that is 0 or 1, held by the IR as a bool.
    pub const fn flag(name: &'static str, default: bool) -> AttrSpec {
        AttrSpec::new(name, AttrType::Flag).with_default(AttrDefault::Int(default as i64))
    }

    pub const fn ints(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::Ints)
    }

    pub const fn float(name: &'static str, default: f32) -> AttrSpec {
        AttrSpec::new(name, AttrType::Float).with_default(AttrDefault::Float(default))
    }

    /// A float whose absence means something (Attention's `scale`).
    pub const fn optional_float(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::Float)
    }

    pub const fn dtype(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::DType)
    }

    pub const fn tensor(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::Tensor)
    }

    pub const fn string(name: &'static str) -> AttrSpec {
        AttrSpec::new(name, AttrType::String)
    }

    /// The IR field's name where it differs from ONNX's.
    pub const fn field(mut self, field: &'static str) -> AttrSpec {
        self.field = field;
        self
    }

    const fn with_default(mut self, default: AttrDefault) -> AttrSpec {
        self.default = default;
        self
    }

    /// From `since` on, ONNX takes the value as constant input `slot`.
    pub const fn input_since(mut self, slot: usize, since: i64) -> AttrSpec {
        self.input = Some(AsInput {
            slot,
            since,
            import_either: false,
        });
        self
    }

    /// [`Self::input_since`], but import accepts either form at any opset.
    pub const fn input_since_either(mut self, slot: usize, since: i64) -> AttrSpec {
        self.input = Some(AsInput {
            slot,
            since,
            import_either: true,
        });
        self
    }

    /// Whether ONNX takes the value as an input at `opset` (export's rule).
    pub fn is_input_at(&self, opset: i64) -> bool {
        self.input.is_some_and(|m| opset >= m.since)
    }

    /// The input import reads the value from at `opset`, if any.
    fn import_input(&self, opset: i64) -> Option<AsInput> {
        self.input.filter(|m| m.import_either || opset >= m.since)
    }
}

/// The value of one attribute of an op, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttrValue<'a> {
    Int(i64),
    Flag(bool),
    Ints(&'a [i64]),
    /// Ints held as indices (Transpose's perm).
    Indices(&'a [usize]),
    Float(f32),
    DType(DType),
    Tensor(&'a Tensor),
    Approximation(GeluApproximation),
}

impl AttrValue<'_> {
    /// The ONNX storage of the value.
    pub fn ty(&self) -> AttrType {
        match self {
            AttrValue::Int(_) => AttrType::Int,
            AttrValue::Flag(_) => AttrType::Flag,
            AttrValue::Ints(_) | AttrValue::Indices(_) => AttrType::Ints,
            AttrValue::Float(_) => AttrType::Float,
            AttrValue::DType(_) => AttrType::DType,
            AttrValue::Tensor(_) => AttrType::Tensor,
            AttrValue::Approximation(_) => AttrType::String,
        }
    }
}

/// The value as dumps print it: floats in exponent form, flags as 0/1,
/// a tensor as its few values and dtype.
impl fmt::Display for AttrValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Flag(b) => write!(f, "{}", *b as u8),
            AttrValue::Ints(v) => write!(f, "{v:?}"),
            AttrValue::Indices(v) => write!(f, "{v:?}"),
            AttrValue::Float(x) => write!(f, "{x:e}"),
            AttrValue::DType(d) => write!(f, "{d}"),
            AttrValue::Tensor(t) => write!(f, "{}:{}", t.small_values().unwrap_or_default(), t.dtype()),
            AttrValue::Approximation(a) => write!(f, "{a:?}"),
        }
    }
}

/// An input that stands for an attribute (Unsqueeze's axes at opset 13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrInput {
    /// The node does not give it.
    Absent,
    /// A constant: its integer values (`None` when it holds no integers).
    Constant(Option<Vec<i64>>),
    /// Computed at run time: it cannot become an IR attribute.
    Computed,
}

/// An ONNX node as an op's `read` sees it. Implemented by the importer;
/// every attribute getter answers `None` when the node lacks it.
pub trait OnnxNode {
    /// The default-domain opset the model imports.
    fn opset(&self) -> i64;
    /// Inputs the node lists, empty (absent optional) ones included.
    fn input_count(&self) -> usize;
    fn output_count(&self) -> usize;
    /// The type of input `slot`, when present.
    fn input(&self, slot: usize) -> Option<&ValueInfo>;
    /// Input `slot`, read as an attribute's value.
    fn attr_input(&self, slot: usize) -> AttrInput;
    fn int(&self, name: &str) -> Option<i64>;
    fn float(&self, name: &str) -> Option<f32>;
    fn ints(&self, name: &str) -> Option<Vec<i64>>;
    fn string(&self, name: &str) -> Option<&[u8]>;
    fn tensor(&self, name: &str) -> Option<Result<Tensor, String>>;
    /// The IR dtype of an int attribute holding a `DataType` code (0 when absent).
    fn dtype(&self, name: &str) -> Result<DType, String>;
    fn has(&self, name: &str) -> bool;
}

/// An ONNX node's attributes read through one op's specs: defaults
/// applied, attributes moved to inputs read from where the opset puts them.
/// Names without a spec (attributes the IR refuses, such as Clip's `min`)
/// read the node as it is.
pub struct Attrs<'a> {
    specs: &'static [AttrSpec],
    node: &'a dyn OnnxNode,
}

impl<'a> Attrs<'a> {
    pub fn new(specs: &'static [AttrSpec], node: &'a dyn OnnxNode) -> Attrs<'a> {
        Attrs { specs, node }
    }

    /// The node itself: inputs, outputs, opset.
    pub fn node(&self) -> &'a dyn OnnxNode {
        self.node
    }

    fn spec(&self, name: &str) -> Option<&'static AttrSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// An int attribute, or its default.
    pub fn int(&self, name: &str) -> Result<i64, String> {
        let default = match self.spec(name).map(|s| s.default) {
            Some(AttrDefault::Int(i)) => Some(i),
            _ => None,
        };
        self.node.int(name).or(default).ok_or_else(|| missing(name))
    }

    /// A 0/1 attribute, or its default.
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        Ok(self.int(name)? != 0)
    }

    /// A float attribute, or its default.
    pub fn float(&self, name: &str) -> Result<f32, String> {
        let default = match self.spec(name).map(|s| s.default) {
            Some(AttrDefault::Float(f)) => Some(f),
            _ => None,
        };
        self.node.float(name).or(default).ok_or_else(|| missing(name))
    }

    /// Ints, from the input that replaces the attribute where the opset
    /// (or the spec's leniency) says so; such an input must be a constant.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        let Some(moved) = self.spec(name).and_then(|s| s.import_input(self.node.opset())) else {
            return Ok(self.node.ints(name));
        };
        let from_input = match self.node.attr_input(moved.slot) {
            AttrInput::Absent => None,
            AttrInput::Constant(ints) => ints,
            AttrInput::Computed => return Err(format!("{name} must be a constant")),
        };
        Ok(match moved.import_either {
            true => from_input.or_else(|| self.node.ints(name)),
            false => from_input,
        })
    }

    pub fn string(&self, name: &str) -> Option<&'a [u8]> {
        self.node.string(name)
    }

    pub fn tensor(&self, name: &str) -> Option<Result<Tensor, String>> {
        self.node.tensor(name)
    }

    pub fn dtype(&self, name: &str) -> Result<DType, String> {
        self.node.dtype(name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.node.has(name)
    }
}

fn missing(name: &str) -> String {
    format!("attribute `{name}` is required")
}

/// The number of inputs the IR op keeps of an ONNX node at `opset`: the
/// inputs that stand for attributes (and any after them) are read as
/// attributes, not as operands.
pub(super) fn operand_count(specs: &[AttrSpec], opset: i64, listed: usize) -> usize {
    specs
        .iter()
        .filter_map(|s| s.import_input(opset))
        .map(|m| m.slot)
        .fold(listed, usize::min)
}
