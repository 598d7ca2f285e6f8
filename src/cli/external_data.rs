//! The external data file of compile's and optimize's output: checked as
//! an output like the model itself, and reported once written.

use std::path::Path;

use bertc::atomic_write::{check_output, OutputPathError};
use bertc::onnx::{data_path, WrittenModel};

use super::group_digits;
use super::model_arg::mb;

/// The output policy for `output` and for the data file that may be
/// written beside it (`OUT.onnx_data`): regular files or new paths, none
/// of them an input of the command.
pub fn check_outputs(output: &Path, inputs: &[(&str, &Path)]) -> Result<(), OutputPathError> {
    check_output(output, inputs)?;
    check_output(&data_path(output), inputs)
}

/// One summary line for the data file, when there is one. A model written
/// inline over one that had external data leaves the old data file: bertc
/// never deletes a file it did not just write, so it says so instead.
pub fn print_written(model: &Path, written: &WrittenModel) {
    if let Some((path, len)) = &written.external_data {
        println!(
            "  data        {}: {} bytes ({}), beside the model",
            path.display(),
            group_digits(*len as usize),
            mb(*len)
        );
        return;
    }
    if let Some(stale) = stale_data_file(model) {
        eprintln!(
            "note: {} is left from an earlier write; {} holds its weights inline and does not read it",
            stale.display(),
            model.display()
        );
    }
}

/// `OUT.onnx_data` beside an inline model, if such a file exists.
pub fn stale_data_file(model: &Path) -> Option<std::path::PathBuf> {
    let data = data_path(model);
    data.symlink_metadata().is_ok().then_some(data)
}
