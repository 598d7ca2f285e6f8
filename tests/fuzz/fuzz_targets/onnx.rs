#![no_main]
//! `bertc::untrusted::onnx_model` on arbitrary bytes — import, then every
//! level, target and precision form's passes and export: any result is
//! fine, a panic, abort or runaway allocation is a bug.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bertc::untrusted::onnx_model(data);
});
