//! External data is mapped once per file, not read whole once per
//! initializer (issue 13: "I/O grows as initializers × file size"). Its own
//! test binary: /proc/self/io counts the bytes every thread of the process
//! reads, so no other test may run beside it.

mod common;

use bertc::config::BertConfig;
use bertc::pipeline::{compile, BuildOptions, PipelineOptions};

/// Bytes this process has read through read(2) and friends (mapped pages
/// are not counted: they are not copied through a buffer).
#[cfg(target_os = "linux")]
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .parse()
        .unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn reading_a_model_maps_its_data_file_once() {
    let case = common::fixture("tiny-base");
    let config = BertConfig::from_path(&case.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(case.join("model.safetensors")),
        ..Default::default()
    };
    let options = PipelineOptions {
        external_data: true,
        check: false,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let written = compile(common::test_session(), &config, opts, &options)
        .unwrap()
        .write_files(&path)
        .unwrap();
    let (_, data_len) = written.external_data.expect("a data file");

    let before = bytes_read();
    let g = bertc::onnx::read_model(&path).unwrap();
    let read = bytes_read() - before;
    assert_eq!(g.parameter_count(), 31_232, "every weight was read");
    // Old behaviour: every one of ~40 initializers read the whole data file
    // (40 × 121 kB). Now: the model file, and the data file not at all
    // through read(2).
    assert!(
        read < written.model_bytes as u64 + data_len,
        "read {read} bytes for a {} + {data_len}-byte model: the data file is read more than once",
        written.model_bytes
    );
}
