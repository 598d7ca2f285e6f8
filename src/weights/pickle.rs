//! A restricted reader of the pickle `torch.save` writes for a state_dict.
//!
//! A pickle is a program: unpickling it with Python calls whatever global
//! it names (`os.system` included). This reader never calls anything. It
//! interprets the opcodes protocol 2 (torch's default) and 4 use for plain
//! data — ints, strings, tuples, lists, dicts — and recognises by name only
//! the globals a state_dict needs: `collections.OrderedDict`, torch's
//! tensor/parameter rebuild functions and the storage types. Any other
//! global is refused by name before anything else happens.
//!
//! Values live in an arena and refer to each other by index, so nothing is
//! recursive (no stack overflow on deep nesting, no reference cycles) and
//! memory is bounded by explicit budgets, not by what the file claims.

use std::collections::HashMap;

use super::stored::DType;

/// Why a pickle was not read.
#[derive(Debug)]
pub enum PickleError {
    /// A global outside the allow-list, as `module.name`.
    RefusedGlobal(String),
    Malformed(String),
}

/// A storage as a persistent id names it: archive entry key, element
/// type, and element count.
#[derive(Debug, Clone)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view of a storage.
#[derive(Debug, Clone)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Upper bounds on what a pickle may make us allocate, whatever it
/// claims or repeats. A state_dict takes ~15 values and ~1 KB per tensor:
/// these allow hundreds of thousands of tensors.
const MAX_VALUES: usize = 4_000_000;
const MAX_STACK: usize = 1_000_000;
const MAX_HEAP_BYTES: usize = 256 << 20;
const MAX_DIMS: usize = 16;
/// torch names storages by number ("0", "1", ...).
const MAX_KEY_LEN: usize = 64;

type Id = usize;

#[derive(Debug)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Callable(Callable),
    StorageType(DType),
    Storage(StorageRef),
    Tensor(Box<TensorRef>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool => "a bool",
            Value::Int(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Callable(_) => "a function",
            Value::StorageType(_) => "a storage type",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}

/// The allowed globals. Each is interpreted here, never looked up.
#[derive(Debug, Clone, Copy)]
enum Callable {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    RebuildParameterWithState,
}

/// The allow-list: what `module.name` means, or None to refuse it.
fn resolve_global(module: &str, name: &str) -> Option<Value> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Value::Callable(Callable::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Value::Callable(Callable::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Value::Callable(Callable::RebuildParameter),
        ("torch._utils", "_rebuild_parameter_with_state") => {
            Value::Callable(Callable::RebuildParameterWithState)
        }
        ("torch", storage) => Value::StorageType(storage_dtype(storage)?),
        _ => return None,
    })
}

/// The element type of a legacy storage class, as torch.save names it.
fn storage_dtype(class: &str) -> Option<DType> {
    let other = |name: &str, size| DType::Other {
        name: format!("torch.{name} ({class})"),
        size,
    };
    Some(match class {
        "FloatStorage" => DType::F32,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "DoubleStorage" => other("float64", 8),
        "LongStorage" => other("int64", 8),
        "IntStorage" => other("int32", 4),
        "ShortStorage" => other("int16", 2),
        "CharStorage" => other("int8", 1),
        "ByteStorage" => other("uint8", 1),
        "BoolStorage" => other("bool", 1),
        "ComplexFloatStorage" => other("complex64", 8),
        "ComplexDoubleStorage" => other("complex128", 16),
        "QInt8Storage" => other("qint8", 1),
        "QUInt8Storage" => other("quint8", 1),
        "QInt32Storage" => other("qint32", 4),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Mark,
    Val(Id),
}

struct Machine<'a> {
    code: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Item>,
    memo: HashMap<u32, Id>,
    /// Bytes allocated for values so far (checked against MAX_HEAP_BYTES).
    heap: usize,
    /// The last string read: in a state_dict, the name of the tensor
    /// being rebuilt, which makes errors point somewhere useful.
    last_str: Option<Id>,
}

/// Reads a state_dict pickle into (name, tensor) pairs, in file order.
pub fn read_state_dict(code: &[u8]) -> Result<Vec<(String, TensorRef)>, PickleError> {
    let mut m = Machine {
        code,
        pos: 0,
        values: Vec::new(),
        stack: Vec::new(),
        memo: HashMap::new(),
        heap: 0,
        last_str: None,
    };
    let root = m.run()?;
    m.state_dict(root)
}

impl Machine<'_> {
    fn err<T>(&self, what: impl std::fmt::Display) -> Result<T, PickleError> {
        let near = match self.last_str.map(|id| &self.values[id]) {
            Some(Value::Str(s)) => format!(", after `{s}`"),
            _ => String::new(),
        };
        Err(PickleError::Malformed(format!(
            "{what} (pickle byte {}{near})",
            self.pos
        )))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        match self
            .pos
            .checked_add(n)
            .and_then(|end| self.code.get(self.pos..end))
        {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => self.err(format!("truncated: {n} more bytes expected")),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn string(&mut self, len: u64) -> Result<String, PickleError> {
        let len = usize::try_from(len).or_else(|_| self.err("string length overflows"))?;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    /// A text line (GLOBAL's operands), without its newline.
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.code[self.pos.min(self.code.len())..];
        let Some(n) = rest.iter().take(256).position(|&b| b == b'\n') else {
            return self.err("unterminated GLOBAL operand");
        };
        let s = self.string(n as u64)?;
        self.pos += 1;
        Ok(s)
    }

    /// Counts `bytes` against the allocation budget.
    fn charge(&mut self, bytes: usize) -> Result<(), PickleError> {
        self.heap += bytes;
        if self.heap > MAX_HEAP_BYTES {
            return self.err("the pickle builds more data than a state_dict holds");
        }
        Ok(())
    }

    fn alloc(&mut self, v: Value) -> Result<Id, PickleError> {
        let heap = match &v {
            Value::Tuple(c) | Value::List(c) => c.len() * size_of::<Id>(),
            Value::Str(s) => s.len(),
            Value::Storage(s) => s.key.len(),
            Value::Tensor(t) => size_of::<TensorRef>() + t.storage.key.len() + 16 * t.shape.len(),
            _ => 0,
        };
        self.charge(size_of::<Value>() + heap)?;
        if self.values.len() >= MAX_VALUES {
            return self.err("too many values for a state_dict pickle");
        }
        if matches!(v, Value::Str(_)) {
            self.last_str = Some(self.values.len());
        }
        self.values.push(v);
        Ok(self.values.len() - 1)
    }

    fn push(&mut self, item: Item) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.err("pickle stack too deep");
        }
        self.stack.push(item);
        Ok(())
    }

    fn push_new(&mut self, v: Value) -> Result<(), PickleError> {
        let id = self.alloc(v)?;
        self.push(Item::Val(id))
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        match self.stack.pop() {
            Some(Item::Val(id)) => Ok(id),
            Some(Item::Mark) => self.err("unexpected MARK on the stack"),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(Item::Val(id)) => Ok(*id),
            _ => self.err("stack underflow"),
        }
    }

    /// Pops everything down to the last MARK (and the MARK).
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.err("no MARK on the stack");
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| match i {
                Item::Val(id) => id,
                Item::Mark => unreachable!("the last MARK was found above"),
            })
            .collect())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(&id) => self.push(Item::Val(id)),
            None => self.err(format!("memo entry {key} read before it was written")),
        }
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let id = self.top()?;
        if self.memo.len() >= MAX_VALUES {
            return self.err("too many memo entries");
        }
        self.memo.insert(key, id);
        Ok(())
    }

    /// Runs the opcodes up to STOP and returns the pickled value.
    fn run(&mut self) -> Result<Id, PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    // PROTO: 2 is torch's default; 3–5 add nothing we read
                    // differently for a state_dict.
                    let proto = self.u8()?;
                    if !(2..=5).contains(&proto) {
                        return self.err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.push(Item::Mark)?,
                b'}' => self.push_new(Value::Dict(Vec::new()))?,
                b']' => self.push_new(Value::List(Vec::new()))?,
                b')' => self.push_new(Value::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Value::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return self.err("stack underflow");
                    }
                    let mut items = vec![0; n];
                    for slot in items.iter_mut().rev() {
                        *slot = self.pop()?;
                    }
                    self.push_new(Value::Tuple(items))?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(u32::from(k))?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    // MEMOIZE: the next free memo index.
                    let k = u32::try_from(self.memo.len()).or_else(|_| self.err("memo overflow"))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(u32::from(k))?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?;
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push_new(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push_new(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push_new(Value::Int(i64::from(v)))?;
                }
                0x8a => {
                    // LONG1: little-endian two's complement, n bytes.
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return self.err(format!("integer of {n} bytes is too large"));
                    }
                    let bytes = self.take(n)?;
                    let mut a = [0u8; 8];
                    a[..n].copy_from_slice(bytes);
                    if n > 0 && bytes[n - 1] & 0x80 != 0 {
                        a[n..].fill(0xFF);
                    }
                    self.push_new(Value::Int(i64::from_le_bytes(a)))?;
                }
                b'N' => self.push_new(Value::None)?,
                0x88 => self.push_new(Value::Bool)?,
                0x89 => self.push_new(Value::Bool)?,
                b'G' => {
                    self.u64()?;
                    self.push_new(Value::Float)?;
                }
                b'X' => {
                    let n = self.u32()?;
                    let s = self.string(u64::from(n))?;
                    self.push_new(Value::Str(s))?;
                }
                0x8c => {
                    let n = self.u8()?;
                    let s = self.string(u64::from(n))?;
                    self.push_new(Value::Str(s))?;
                }
                0x8d => {
                    let n = self.u64()?;
                    let s = self.string(n)?;
                    self.push_new(Value::Str(s))?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    // STACK_GLOBAL (protocol 4): module and name as strings.
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.values[module], &self.values[name]) {
                        (Value::Str(m), Value::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n)?;
                        }
                        _ => return self.err("STACK_GLOBAL operands are not strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.push_new(v)?;
                }
                b'b' => {
                    // BUILD: only an OrderedDict's attributes (`_metadata`,
                    // module versions) are set this way; they are ignored.
                    self.pop()?;
                    let target = self.top()?;
                    if !matches!(self.values[target], Value::Dict(_)) {
                        let kind = self.values[target].kind();
                        return self.err(format!("BUILD on {kind} is not part of a state_dict"));
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?;
                    self.set_items(d, items)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.append(l, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.append(l, items)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push_new(Value::Storage(storage))?;
                }
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.push(Item::Val(id))?;
                }
                _ => {
                    self.pos -= 1;
                    return self.err(format!(
                        "pickle opcode 0x{op:02x} is not one a torch state_dict uses"
                    ));
                }
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match resolve_global(module, name) {
            Some(v) => self.push_new(v),
            None => Err(PickleError::RefusedGlobal(format!("{module}.{name}"))),
        }
    }

    fn set_items(&mut self, dict: Id, items: Vec<Id>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of items");
        }
        self.charge(items.len() * size_of::<Id>())?;
        let Value::Dict(pairs) = &mut self.values[dict] else {
            let kind = self.values[dict].kind();
            return self.err(format!("SETITEM on {kind}, not a dict"));
        };
        pairs.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
        Ok(())
    }

    fn append(&mut self, list: Id, items: Vec<Id>) -> Result<(), PickleError> {
        self.charge(items.len() * size_of::<Id>())?;
        let Value::List(values) = &mut self.values[list] else {
            let kind = self.values[list].kind();
            return self.err(format!("APPEND on {kind}, not a list"));
        };
        values.extend(items);
        Ok(())
    }

    fn int(&self, id: Id, what: &str) -> Result<u64, PickleError> {
        match self.values[id] {
            Value::Int(v) if v >= 0 => Ok(v as u64),
            ref v => self.err(format!("{what} is {}, expected a non-negative int", v.kind())),
        }
    }

    fn int_tuple(&self, id: Id, what: &str) -> Result<Vec<u64>, PickleError> {
        let Value::Tuple(items) = &self.values[id] else {
            return self.err(format!("{what} is {}, expected a tuple", self.values[id].kind()));
        };
        if items.len() > MAX_DIMS {
            return self.err(format!("{what} has {} dimensions", items.len()));
        }
        items.iter().map(|&i| self.int(i, what)).collect()
    }

    /// `('storage', StorageType, key, location, numel)`: a storage in the
    /// archive's `data/` folder.
    fn persistent_load(&self, pid: Id) -> Result<StorageRef, PickleError> {
        let Value::Tuple(items) = &self.values[pid] else {
            return self.err("persistent id is not a tuple");
        };
        let [tag, class, key, _location, numel] = items.as_slice() else {
            return self.err(format!("persistent id has {} fields, expected 5", items.len()));
        };
        let (Value::Str(tag), Value::Str(key)) = (&self.values[*tag], &self.values[*key]) else {
            return self.err("persistent id is not ('storage', type, key, location, numel)");
        };
        if tag != "storage" {
            return self.err(format!("persistent id of kind `{tag}`, expected `storage`"));
        }
        if key.len() > MAX_KEY_LEN {
            return self.err(format!("storage key of {} bytes", key.len()));
        }
        let Value::StorageType(dtype) = &self.values[*class] else {
            return self.err("persistent id names no storage type");
        };
        Ok(StorageRef {
            key: key.clone(),
            dtype: dtype.clone(),
            numel: self.int(*numel, "storage size")?,
        })
    }

    fn reduce(&self, func: Id, args: Id) -> Result<Value, PickleError> {
        let Value::Callable(callable) = self.values[func] else {
            let kind = self.values[func].kind();
            return self.err(format!("REDUCE calls {kind}"));
        };
        let Value::Tuple(args) = &self.values[args] else {
            return self.err("REDUCE arguments are not a tuple");
        };
        match callable {
            Callable::OrderedDict if args.is_empty() => Ok(Value::Dict(Vec::new())),
            Callable::OrderedDict => self.err("OrderedDict called with arguments"),
            Callable::RebuildTensorV2 => {
                // (storage, offset, size, stride, requires_grad,
                //  backward_hooks[, metadata])
                if !(6..=7).contains(&args.len()) {
                    return self.err(format!("_rebuild_tensor_v2 with {} arguments", args.len()));
                }
                let Value::Storage(storage) = &self.values[args[0]] else {
                    return self.err("_rebuild_tensor_v2 without a storage");
                };
                let shape = self.int_tuple(args[2], "tensor size")?;
                let stride = self.int_tuple(args[3], "tensor stride")?;
                if shape.len() != stride.len() {
                    return self.err(format!(
                        "tensor size {shape:?} and stride {stride:?} differ in rank"
                    ));
                }
                Ok(Value::Tensor(Box::new(TensorRef {
                    storage: storage.clone(),
                    offset: self.int(args[1], "storage offset")?,
                    shape,
                    stride,
                })))
            }
            Callable::RebuildParameter | Callable::RebuildParameterWithState => {
                // (data, requires_grad, backward_hooks[, state]): the data.
                match args.first().map(|&a| &self.values[a]) {
                    Some(Value::Tensor(t)) => Ok(Value::Tensor(t.clone())),
                    _ => self.err("_rebuild_parameter without a tensor"),
                }
            }
        }
    }

    /// The bytes a state_dict entry's copy takes (name and tensor), or why
    /// the entry is not one (a key that is no string, a value no tensor).
    fn pair_bytes(&self, k: Id, v: Id) -> Result<usize, PickleError> {
        let Value::Str(name) = &self.values[k] else {
            return Err(PickleError::Malformed(format!(
                "a state_dict key is {}, not a string",
                self.values[k].kind()
            )));
        };
        let Value::Tensor(t) = &self.values[v] else {
            return Err(PickleError::Malformed(format!(
                "entry `{name}` is {}, not a tensor: expected a state_dict (name → tensor)",
                self.values[v].kind()
            )));
        };
        Ok(size_of::<(String, TensorRef)>() + name.len() + t.storage.key.len() + 16 * t.shape.len())
    }

    /// The top-level dict as (name, tensor) pairs. Each pair copies its
    /// name and tensor out of the shared values, so the copies are charged
    /// to the same budget: a dict of millions of pairs that all reuse one
    /// memoized tensor fits the budget as ids, then took gigabytes as
    /// copies (issue 25, N4). A name set twice is refused: torch.save never
    /// writes one, and which of the two holds the weights would be a guess.
    fn state_dict(&mut self, root: Id) -> Result<Vec<(String, TensorRef)>, PickleError> {
        let pairs = match std::mem::replace(&mut self.values[root], Value::None) {
            Value::Dict(pairs) => pairs,
            other => {
                return Err(PickleError::Malformed(format!(
                    "the pickle holds {}, not a state_dict (a dict of tensors)",
                    other.kind()
                )))
            }
        };
        let mut tensors = Vec::new();
        for (k, v) in pairs {
            // Charged before the copy is made.
            let copy = self.pair_bytes(k, v)?;
            if self.charge(copy).is_err() {
                return Err(PickleError::Malformed(format!(
                    "the state_dict lists more than {} entries: the pickle builds more data than a \
                     state_dict holds",
                    tensors.len()
                )));
            }
            if let (Value::Str(name), Value::Tensor(t)) = (&self.values[k], &self.values[v]) {
                tensors.push((name.clone(), (**t).clone()));
            }
        }
        let mut names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(PickleError::Malformed(format!(
                "the state_dict sets `{}` more than once; torch.save writes each name once, so which \
                 holds the weights is ambiguous",
                twice[0]
            )));
        }
        Ok(tensors)
    }
}
