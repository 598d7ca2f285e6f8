//! The precision an onnxruntime-quantized file is written in.
//!
//! [`crate::onnx::dequantize`] reads such a file as the f32 model its int8
//! weights give, so the passes fuse it like any export. Written as that
//! f32 graph it would lose its precision (four times the bytes, f32
//! products); written as onnxruntime laid it out it would run only where
//! onnxruntime's form runs well. So, unless the user chose a precision,
//! it is written in bertc's own int8 form of the same kind for the target
//! (the one `--quantize` writes): dynamic for `quantize_dynamic`'s files,
//! static (min-max ranges, as `quantize_static` calibrates by default) for
//! QDQ files (and for OpenVINO, whose int8 is calibrated Q/DQ pairs, for
//! both). Either way its weights are quantized again from the
//! dequantized ones, and the report says so.

use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{dequantize, QuantizedBy};
use crate::passes::Target;
use crate::quantize::{CalibrationMethod, Form, Precision};

use super::PipelineOptions;

/// `opts` with the precision the file in `g` is written in when the user
/// chose none, and the report's note on what was done; `g` dequantized.
/// A file onnxruntime did not quantize: `opts` unchanged, no note.
pub(super) fn imported_precision(
    g: &mut Graph,
    opts: &PipelineOptions,
) -> Result<(PipelineOptions, Option<String>), Error> {
    let found = dequantize(g)?;
    let Some(by) = found.by else {
        return Ok((opts.clone(), None));
    };
    let statik = Form::Int8Static(CalibrationMethod::MinMax);
    let (kind, form) = match by {
        // OpenVINO's int8 is calibrated Q/DQ pairs only: a dynamic file is
        // written static for it.
        QuantizedBy::Dynamic if opts.target == Target::Openvino => ("quantize_dynamic", statik),
        QuantizedBy::Dynamic => ("quantize_dynamic", Form::Int8Dynamic),
        QuantizedBy::StaticQdq => ("quantize_static (QDQ)", statik),
    };
    let read = format!(
        "onnxruntime's {kind} int8 file read as f32 ({} quantized constants dequantized, {} activation \
         Q/DQ pairs read unrounded, {} int8 products and contrib ops read as their f32 ops)",
        found.constants, found.activation_pairs, found.products
    );
    let mut effective = opts.clone();
    let chosen = opts.precision.is_reduced();
    if !chosen {
        effective.precision = Precision::new(form);
        effective.validate()?;
    }
    let written = effective.precision.name();
    let note = match chosen {
        false => format!(
            "{read}; written in bertc's {written} form for {}, its weights re-quantized from the dequantized ones",
            opts.target.name()
        ),
        true => format!("{read}; re-quantized to {written} from its dequantized weights, as asked"),
    };
    Ok((effective, Some(note)))
}
