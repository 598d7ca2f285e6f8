//! Shapes made of fixed and named symbolic dimensions, and the broadcasting
//! rule of ONNX (numpy's) over them.

use std::fmt;

/// The symbolic batch dimension of every bertc graph input.
pub const BATCH: &str = "batch_size";
/// The symbolic sequence dimension of every bertc graph input.
pub const SEQUENCE: &str = "sequence_length";
/// The count of NonZero's result, fixed only by the values at run time
/// (a packed graph's number of real tokens). One name for every NonZero:
/// bertc's graphs hold at most one (a file with two that differ would be
/// told apart only by the runtime).
pub const NONZERO_COUNT: &str = "nonzero_count";
/// The length of a one-axis Slice whose bounds are computed at run time
/// (DeBERTa's relative table cut to the rows a sequence length reads: at
/// most the table, at most 2·S − 1). One name for every such Slice:
/// bertc's graphs cut with one pair of bounds.
pub const SLICE_LENGTH: &str = "slice_length";

/// The number of `size`-long blocks that cover `symbol` (its ceiling
/// quotient): the length of `Range(0, symbol, size)`, spelled
/// `ceil(sequence_length/32)` — one symbol (no `*` or `+`), so products
/// and sums of it read as they do for any other (see [`Factors`]).
pub fn blocks_of(symbol: &str, size: i64) -> Dim {
    Dim::Sym(format!("ceil({symbol}/{size})"))
}

/// The symbol and block size of a [`blocks_of`] symbol.
pub fn parse_blocks(symbol: &str) -> Option<(&str, i64)> {
    let inner = symbol.strip_prefix("ceil(")?.strip_suffix(')')?;
    let (name, size) = inner.rsplit_once('/')?;
    Some((name, size.parse().ok().filter(|&n: &i64| n > 0)?))
}

/// One dimension: a known size or a named symbol fixed only at run time.
/// The same name means the same size everywhere in a graph.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Fixed(i64),
    Sym(String),
}

impl Dim {
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(name.to_string())
    }

    pub fn fixed(&self) -> Option<i64> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

/// A product of dims as a coefficient and the sorted symbol factors:
/// `2*batch_size*sequence_length` is `(2, [batch_size, sequence_length])`.
/// Symbolic products (from Flatten, or a Reshape to -1) are named by this
/// canonical spelling, so equal products are equal dims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Factors {
    pub coefficient: i64,
    pub symbols: Vec<String>,
}

impl Factors {
    /// `None` when the fixed part overflows i64: no tensor has that many
    /// elements, and a file's dims (a Reshape target, a declared input)
    /// can claim anything.
    pub fn of(dims: &[Dim]) -> Option<Factors> {
        let mut f = Factors {
            coefficient: 1,
            symbols: Vec::new(),
        };
        for d in dims {
            match d {
                Dim::Fixed(n) => f.coefficient = f.coefficient.checked_mul(*n)?,
                Dim::Sym(s) => {
                    for part in s.split('*') {
                        match part.parse::<i64>() {
                            Ok(n) => f.coefficient = f.coefficient.checked_mul(n)?,
                            Err(_) => f.symbols.push(part.to_string()),
                        }
                    }
                }
            }
        }
        f.symbols.sort();
        Some(f)
    }

    /// `self / other`, when exact.
    pub fn divide(&self, other: &Factors) -> Option<Factors> {
        if other.coefficient == 0 || self.coefficient % other.coefficient != 0 {
            return None;
        }
        let mut symbols = self.symbols.clone();
        for s in &other.symbols {
            let i = symbols.iter().position(|x| x == s)?;
            symbols.remove(i);
        }
        Some(Factors {
            coefficient: self.coefficient / other.coefficient,
            symbols,
        })
    }

    pub fn to_dim(&self) -> Dim {
        match (self.coefficient, self.symbols.as_slice()) {
            (n, []) => Dim::Fixed(n),
            (1, syms) => Dim::Sym(syms.join("*")),
            (n, syms) => Dim::Sym(format!("{n}*{}", syms.join("*"))),
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Fixed(n as i64)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A tensor shape. Rank is always known in bertc's IR.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::from(d)).collect())
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// The fixed sizes, when no dimension is symbolic.
    pub fn as_fixed(&self) -> Option<Vec<usize>> {
        self.0.iter().map(|d| d.fixed().map(|n| n as usize)).collect()
    }

    /// Resolves a possibly negative axis against this rank.
    pub fn axis(&self, axis: i64) -> Option<usize> {
        normalize_axis(axis, self.rank())
    }

    /// numpy-style broadcasting of two shapes, or `None` if they conflict.
    pub fn broadcast(&self, other: &Shape) -> Option<Shape> {
        let rank = self.rank().max(other.rank());
        let one = Dim::Fixed(1);
        let mut out = Vec::with_capacity(rank);
        for i in 0..rank {
            let a = dim_from_right(self, rank - 1 - i).unwrap_or(&one);
            let b = dim_from_right(other, rank - 1 - i).unwrap_or(&one);
            out.push(match (a, b) {
                _ if a == b => a.clone(),
                (Dim::Fixed(1), _) => b.clone(),
                (_, Dim::Fixed(1)) => a.clone(),
                _ => return None,
            });
        }
        Some(Shape(out))
    }
}

fn dim_from_right(shape: &Shape, i: usize) -> Option<&Dim> {
    shape.rank().checked_sub(i + 1).map(|k| &shape.0[k])
}

/// Resolves a possibly negative axis; `None` when out of range.
pub fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}
