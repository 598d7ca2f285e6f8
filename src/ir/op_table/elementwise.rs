//! Entries of the elementwise ops: functions of one tensor, of two
//! broadcast tensors, Clip and Where.

use super::super::op::{BinaryOp as B, Op, UnaryOp as U};
use super::{between, entries, exactly, not_supported, onnx, Attrs, CostRule::Uncounted, Domain};

entries! {
    ERF = onnx("Erf", 9, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Erf)));
    TANH = onnx("Tanh", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Tanh)));
    SQRT = onnx("Sqrt", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Sqrt)));
    RELU = onnx("Relu", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Relu)));
    SIGMOID = onnx("Sigmoid", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Sigmoid)));
    NEG = onnx("Neg", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Neg)));
    EXP = onnx("Exp", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Exp)));
    LOG = onnx("Log", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Log)));
    SOFTPLUS = onnx("Softplus", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Softplus)));
    ABS = onnx("Abs", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Abs)));
    RECIPROCAL = onnx("Reciprocal", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Reciprocal)));
    COS = onnx("Cos", 7, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Cos)));
    SIN = onnx("Sin", 7, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Sin)));
    ROUND = onnx("Round", 11, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Round)));
    NOT = onnx("Not", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Not)));
    SIGN = onnx("Sign", 9, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Sign)));
    CEIL = onnx("Ceil", 1, exactly(1), Uncounted, |_| Ok(Op::Unary(U::Ceil)));
    ADD = onnx("Add", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Add)));
    SUB = onnx("Sub", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Sub)));
    MUL = onnx("Mul", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Mul)));
    DIV = onnx("Div", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Div)));
    POW = onnx("Pow", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Pow)));
    MAX = onnx("Max", 1, exactly(2), Uncounted, |a| of_two(a, "Max", B::Max));
    MIN = onnx("Min", 1, exactly(2), Uncounted, |a| of_two(a, "Min", B::Min));
    EQUAL = onnx("Equal", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Equal)));
    LESS = onnx("Less", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Less)));
    GREATER = onnx("Greater", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Greater)));
    GREATER_OR_EQUAL = onnx("GreaterOrEqual", 12, exactly(2), Uncounted, |_| {
        Ok(Op::Binary(B::GreaterOrEqual))
    });
    LESS_OR_EQUAL = onnx("LessOrEqual", 12, exactly(2), Uncounted, |_| Ok(Op::Binary(B::LessOrEqual)));
    AND = onnx("And", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::And)));
    OR = onnx("Or", 1, exactly(2), Uncounted, |_| Ok(Op::Binary(B::Or)));
    /// Inputs: x, min (optional), max (optional), scalars of x's type.
    CLIP = onnx("Clip", 1, between(1, 3), Uncounted, |a| {
        match a.has("min") || a.has("max") {
            true => Err("Clip with min/max attributes (opset < 11)".into()),
            false => Ok(Op::Clip),
        }
    });
    WHERE = onnx("Where", 9, exactly(3), Uncounted, |_| Ok(Op::Where));
}

/// ONNX's Max and Min take any number of inputs; the IR's, two.
fn of_two(a: &Attrs, op_type: &str, op: B) -> Result<Op, String> {
    match a.node().input_count() {
        2 => Ok(Op::Binary(op)),
        _ => Err(not_supported(Domain::Onnx, op_type)),
    }
}
